"""The ids every vocabulary reserves, fixed so that every model, checkpoint and search agrees
on them without knowing the tokenizer."""

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
