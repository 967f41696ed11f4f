"""Distilling task-specific knowledge from BERT into a BiLSTM (Tang et al. 2019), as an nbdev course and library

Modules:

- `bilstm_kd.teacher`: `finetune_teacher` (Trainer), `load_teacher`, fast length-sorted `teacher_logits` with optional int8, a content-addressed on-disk `LogitsCache`, and the `teacher` / `evaluate` CLI commands."""

__version__ = "0.1.0"
