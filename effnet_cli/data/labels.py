"""Class names for `effnet predict`: the 1000 ImageNet classes shipped with effnet, or a file.

`data/imagenet_labels.txt` holds the ILSVRC-2012 classes in their standard index order (the
sorted WordNet synset ids), one line each: the synset's lemmas, as the timm package (Apache-2.0)
ships them in `timm/data/_info/imagenet_synset_to_lemma.txt`. They are public facts; effnet
never downloads them.

`data/imagenet_synsets.txt` holds the same classes' WordNet ids (`n01440764` …) in the same
order, one a line, as timm 1.0.31 (Apache-2.0) ships them in `timm/data/_info/imagenet_synsets.txt`
(sorted, so that line i is class i): `effnet evaluate` reads folders named by synset with it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from effnet_cli.util.errors import UsageError

IMAGENET_CLASSES = 1000


def imagenet() -> list[str]:
    text = resources.files("effnet_cli").joinpath("data/imagenet_labels.txt").read_text("utf-8")
    return text.splitlines()


def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet classes' WordNet ids, in class-index order."""
    text = resources.files("effnet_cli").joinpath("data/imagenet_synsets.txt").read_text("utf-8")
    return text.split()


def read_file(path: Path) -> list[str]:
    """One label per line; trailing empty lines are ignored, an empty line inside is a label."""
    if not path.is_file():
        raise UsageError(f"labels file {str(path)!r} does not exist")
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not a readable UTF-8 text file ({exc})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise UsageError(f"{path} holds no labels; give one label per line")
    return [line.strip() for line in lines]


def for_head(num_classes: int, path: Path | None) -> tuple[list[str] | None, str | None]:
    """Labels for a head of `num_classes`, and a note when there are none to show.

    A file whose count differs is an error naming both; without a file, a 1000-class head gets
    the ImageNet names and any other head its class indices only.
    """
    if path is not None:
        names = read_file(path)
        if len(names) != num_classes:
            raise UsageError(
                f"the model has {num_classes} classes but {path} holds {len(names)} labels",
                hint="give a labels file with one line per class",
            )
        return names, None
    if num_classes == IMAGENET_CLASSES:
        return imagenet(), None
    return None, (
        f"note: a {num_classes}-class head has no built-in labels; classes are shown by index "
        "(--labels FILE names them)"
    )
