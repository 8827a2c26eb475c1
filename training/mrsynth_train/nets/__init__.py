"""Networks of the training recipes (the default model's network lives in MRSynthLib.nets).

``common`` holds the blocks several recipes share (PatchGAN, gradient reversal, post-norm
modulation, residual and up-sampling units); one file per method holds its composition.
"""
