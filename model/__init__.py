"""tinygpt: a GPT from scratch, its trainer, and the scaling and few-shot labs.

The importable library behind the `tinygpt` command and train.py / sample.py.
"""
