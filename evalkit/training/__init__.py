"""Training kit: reproduce SFT and GRPO checkpoints on TRL, with rewards that are evalkit's own metrics.

Modules: `config` (recipe YAML schema), `data` (any task's split as a TRL dataset), `rewards` (TRL reward
functions from evalkit parsers and metrics), `modeling` (load/build models, write checkpoints with their card),
`sft` and `grpo` (the two trainers), `demo` (the CPU phantom recipe). Heavy libraries (torch, TRL) are imported
only inside functions, so importing this package stays cheap.
"""
