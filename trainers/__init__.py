"""rlhub trainers: GRPO and PPO on accelerate + peft, reaching environments through the registry."""
