"""irconstyle's architectures in spandrel's registry, so that ComfyUI, chaiNNer and other spandrel users load
irconstyle checkpoints as they load any other model::

    import irconstyle.spandrel, spandrel
    irconstyle.spandrel.register()
    model = spandrel.ModelLoader().load_from_file("denoise.safetensors")   # an ImageModelDescriptor
    restored = model(image)                                                 # 1×3×H×W in [0, 1]

spandrel hands an architecture only the state dict (not our file's metadata), so each architecture here is
recognised from its keys and its hyper-parameters are read from the tensor shapes, by the same detection that
:func:`irconstyle.load` uses for files without metadata (:mod:`irconstyle.models.detection`). A state dict is
claimed by one family at most: besides the keys every network of the family has, it must be the family that
detection picks for it. The keys are distinct from spandrel's own architectures (spandrel's NAFNet, KBNet and
Uformer keep their authors' names: ``intro``, ``middle_blks``, ``encoderlayer_0`` …), and :func:`register`
puts ours ahead of them in detection order all the same. Settings that leave no trace in the weights take their
defaults (MAXIM's ``leaky_slope``, Uformer's ``qk_scale``; Uformer's ``img_size`` by detection's rule); a
checkpoint trained with other values loads but computes differently (``irconstyle.load_model`` reads them
from the file's metadata instead). A training checkpoint loads as its inference network (ConStyle's momentum
encoder and queue left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

try:
    import spandrel
except ImportError as error:  # spandrel itself, or torchvision, which spandrel imports
    raise ImportError(f"irconstyle.spandrel needs spandrel and torchvision (`pip install spandrel torchvision`, "
                      f"with the torchvision build that matches your torch): {error}") from error
from torch import nn

from irconstyle.models.detection import family_in_our_layout, inference_state, read_our_layout

StateDict = Mapping[str, torch.Tensor]
ID_PREFIX = "irconstyle."
CONSTYLE_KEYS = ("constyle.encoder.stage1.0.0.weight", "constyle.encoder.head_q.0.weight")
_CONSTYLE_UNET = (*CONSTYLE_KEYS, "body.stem.weight", "body.merge3.weight", "body.output.weight")
_NAFNET_UNET = ("stem.weight", "stem.bias", "downsamples.0.weight", "upsamples.0.0.weight", "output.weight")

# Keys every network of a family has, whatever its block counts and switches (the family's skeleton).
_SKELETONS: dict[str, tuple[str, ...]] = {
    "constyle_nafnet": _CONSTYLE_UNET,
    "constyle_restormer": (*_CONSTYLE_UNET, "body.feature_adapters.0.1.weight"),  # PReLU adapters
    "constyle_maxim": (*CONSTYLE_KEYS, "body.input_convs.0.weight", "body.cross_gating.0.proj_x.weight"),
    "constyle_kbnet": (*_CONSTYLE_UNET, "body.stem.bias"),
    "constyle_uformer": (*_CONSTYLE_UNET, "body.stem.bias", "body.output.bias"),
    "nafnet": _NAFNET_UNET,
    "kbnet": _NAFNET_UNET,
    "restormer": ("stem.weight", "down1.conv.weight", "up1.conv.weight", "merge3.weight", "output.weight"),
    "maxim": ("input_convs.0.weight", "encoders.0.multi_axis.0.block.token_mix.weight",
              "bottleneck.0.multi_axis.0.grid.token_mix.weight", "output.weight"),
    "maxim_multistage": ("stages.0.input_convs.0.weight", "stages.0.encoders.0.multi_axis.0.block.token_mix.weight",
                         "stages.0.bottleneck.0.multi_axis.0.grid.token_mix.weight"),
    "uformer": ("stem.weight", "stem.bias", "downsamples.0.weight", "upsamples.0.weight", "output.weight"),
}


class IrconstyleArchitecture(spandrel.Architecture[nn.Module]):
    """One irconstyle family for spandrel: detection from the keys, the network rebuilt from the configuration
    that :func:`irconstyle.models.detection.read_our_layout` reads from the shapes."""

    def __init__(self, model_name: str, class_name: str, *, supports_bfloat16: bool) -> None:
        super().__init__(id=f"{ID_PREFIX}{class_name}", name=f"{class_name} (irconstyle)", detect=self._claims)
        self.model_name = model_name
        self.supports_bfloat16 = supports_bfloat16

    def _claims(self, state_dict: StateDict) -> bool:
        skeleton = _SKELETONS[self.model_name]
        return all(key in state_dict for key in skeleton) and family_in_our_layout(state_dict) == self.model_name

    def hyperparameters(self, state_dict: StateDict) -> dict[str, Any]:
        """The constructor keywords of the network whose inference tensors are exactly ``state_dict``'s."""
        return dict(read_our_layout(state_dict, self.model_name).options)

    def load(self, state_dict: StateDict) -> spandrel.ImageModelDescriptor[nn.Module]:
        model = read_our_layout(state_dict, self.model_name).build()
        state = inference_state(state_dict)
        first_conv = next(tensor for key, tensor in state.items() if key.endswith(".weight") and tensor.ndim == 4)
        return spandrel.ImageModelDescriptor(
            model,
            state,
            architecture=self,
            purpose="Restoration",
            tags=[f"{int(first_conv.shape[0])}w"],
            supports_half=False,
            supports_bfloat16=self.supports_bfloat16,
            scale=1,
            input_channels=3,
            output_channels=3,
            # none: every model pads to its size multiple itself, as it was trained (zeros for NAFNet, centred
            # reflection for MAXIM multi-stage), so spandrel's call gives exactly what irconstyle's does
            size_requirements=spandrel.SizeRequirements(),
        )


# The ConStyle variants' projection heads always compute in float32 (their BatchNorm divides by tiny running
# deviations), so a model cast to bfloat16 as a whole fails there; the other families run in bfloat16.
ARCHITECTURES: tuple[IrconstyleArchitecture, ...] = (
    IrconstyleArchitecture("constyle_nafnet", "ConStyleNAFNet", supports_bfloat16=False),
    IrconstyleArchitecture("constyle_restormer", "ConStyleRestormer", supports_bfloat16=False),
    IrconstyleArchitecture("constyle_maxim", "ConStyleMaxim", supports_bfloat16=False),
    IrconstyleArchitecture("constyle_kbnet", "ConStyleKBNet", supports_bfloat16=False),
    IrconstyleArchitecture("constyle_uformer", "ConStyleUformer", supports_bfloat16=False),
    IrconstyleArchitecture("nafnet", "NAFNet", supports_bfloat16=True),
    IrconstyleArchitecture("restormer", "Restormer", supports_bfloat16=True),
    IrconstyleArchitecture("maxim", "Maxim", supports_bfloat16=True),
    IrconstyleArchitecture("maxim_multistage", "MaximMultiStage", supports_bfloat16=True),
    IrconstyleArchitecture("kbnet", "KBNet", supports_bfloat16=True),
    IrconstyleArchitecture("uformer", "Uformer", supports_bfloat16=True),
)


def register(registry: spandrel.ArchRegistry | None = None) -> list[str]:
    """Add irconstyle's architectures to ``registry`` (spandrel's ``MAIN_REGISTRY`` by default), detected before
    every architecture already there; calling it again changes nothing. Returns the ids added."""
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    others = tuple(support.architecture.id for support in registry if not support.architecture.id.startswith(ID_PREFIX))
    supports = [spandrel.ArchSupport.from_architecture(architecture, before=others) for architecture in ARCHITECTURES]
    return [support.architecture.id for support in registry.add(*supports, ignore_duplicates=True)]
