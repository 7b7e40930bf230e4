"""The images a model reads and the classes it names, as data: which images a run reads
(`inputs`), how each is decoded and prepared (`images`), and the ImageNet class names and
synsets (`labels`, from this folder's .txt files; README.md says where they come from)."""
