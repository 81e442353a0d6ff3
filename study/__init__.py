"""The Ray Tune study of MTAN: search space, trainable, the study command and its results files."""
