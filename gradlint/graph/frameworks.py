"""Framework quirks, one table: what libraries around PyTorch do that changes a model or how it
is trained, and that gradlint must know to read user code right.

- **Trainers that own the loop** and clip (or not) for the user: Lightning's ``Trainer`` clips
  only with ``gradient_clip_val``; Hugging Face's ``Trainer`` (and subclasses such as
  ``Seq2SeqTrainer``) clips by default, ``TrainingArguments.max_grad_norm = 1.0``, unless it is
  0 or None.
- **Base-class hooks that initialize**: Hugging Face's ``PreTrainedModel.post_init()`` applies
  the model's own ``_init_weights`` to every submodule.
- **Clipping calls of frameworks**: ``accelerator.clip_grad_norm_`` (Accelerate) and
  ``fabric.clip_gradients`` (Lightning Fabric) clip like ``torch.nn.utils.clip_grad_norm_``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainerQuirk:
    framework: str  # as messages name it
    packages: tuple[str, ...]  # top-level packages the Trainer class comes from
    suffix: str  # the class name ends with this (``Trainer``, ``Seq2SeqTrainer``)
    exact: bool  # the class name is exactly ``suffix``
    setting: str  # the keyword that sets the clipping threshold
    on_args: bool  # the keyword belongs to the ``args=`` object (``TrainingArguments``)
    clips_by_default: str | None  # what clips when the setting is absent (None: nothing)
    absent: str  # when nothing clips because the setting is absent: what the code says
    how_to: str  # how to turn clipping on

    def matches(self, qualname: str) -> bool:
        top, kind = qualname.split(".")[0], qualname.rsplit(".", 1)[-1]
        return top in self.packages and (kind == self.suffix if self.exact else kind.endswith(self.suffix))


TRAINERS: tuple[TrainerQuirk, ...] = (
    TrainerQuirk(
        "Lightning",
        ("lightning", "pytorch_lightning"),
        "Trainer",
        True,
        "gradient_clip_val",
        False,
        None,
        "with no `gradient_clip_val` (Lightning does not clip by default)",
        "pass `gradient_clip_val=1.0` to `Trainer(...)`",
    ),
    TrainerQuirk(
        "Hugging Face",
        ("transformers",),
        "Trainer",
        False,
        "max_grad_norm",
        True,
        "max_grad_norm=1.0 (the default)",
        "",
        "leave `TrainingArguments(max_grad_norm=...)` at 1.0",
    ),
)

#: methods a framework's base class defines that apply one of the model's own methods to every
#: submodule: ``post_init`` -> ``_init_weights`` (Hugging Face ``PreTrainedModel``)
INIT_HOOKS: dict[str, str] = {"post_init": "_init_weights"}

#: clipping functions and methods, under any receiver or import alias: torch's own and the
#: frameworks' (``accelerator.clip_grad_norm_``, ``fabric.clip_gradients``)
CLIP_NAMES = ("clip_grad_norm_", "clip_grad_value_", "clip_grad_norm", "clip_gradients", "clip_grad_value")
