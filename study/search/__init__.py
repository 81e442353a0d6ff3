"""The study's search: the Optuna journal, the searcher on it, and ASHA (docs/design.md, "Layout")."""
