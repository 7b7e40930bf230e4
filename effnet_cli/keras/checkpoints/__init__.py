"""Every checkpoint reader, in one room: Keras weights files (`keras_files`: .weights.h5, legacy
.h5, and the entry point `load_weights`), PyTorch files read without torch (`torch_files`), their
names mapped onto effnet's layers (`torch_layouts`), and the checks every value passes before it
is loaded (`values`: non-finite and wrongly typed weights refused)."""
