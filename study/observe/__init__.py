"""What a running study shows and logs: its progress, TensorBoard, MLflow, W&B."""
