"""Distilling task-specific knowledge from BERT into a BiLSTM (Tang et al. 2019), as an nbdev course and library"""

__version__ = "0.1.0"
