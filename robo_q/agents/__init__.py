"""Q-critic agents (CQN, CQN-AS), their building blocks and the BC baseline."""
