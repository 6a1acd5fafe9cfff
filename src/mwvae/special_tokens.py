"""The special entries that open every caption vocabulary, in order (`mwvae.data.tokens`).

Padding is id 0: the sequence likelihood skips it and the networks' embeddings keep it zero."""

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(len(SPECIALS))
