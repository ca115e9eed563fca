"""The SageMaker inference container: RL meta-controller (TorchScript) + LLM voter (Ollama) behind /invocations."""
