"""Networks of the training recipes (the default model's network lives in MRSynthLib.nets).

``common`` holds the blocks several recipes share (PatchGAN, gradient reversal, post-norm
modulation, residual and up-sampling units); one file per method holds its composition;
``resnet_generator`` is CycleGAN's generator (the speed and quality reference) and ``cost`` counts the
multiply-accumulates the model cards report. None of them ships with the Slicer module.
"""
