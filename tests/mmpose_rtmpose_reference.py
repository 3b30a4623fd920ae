"""mmpose's own RTMPose-m whole-body model: random weights, saved as mmpose saves, and its SimCC output.

Runs in the mmpose test venv (``~/.cache/wbt/mmpose-venv``, made by ``install.sh --test``), never
in wbt's environment; ``tests/test_student_mmpose.py`` starts it and compares the student with it.

    python tests/mmpose_rtmpose_reference.py OUT_DIR

writes ``OUT_DIR/rtmpose-m.pth`` (RTMPose-m whole-body 256x192, a full training checkpoint as
mmengine's Runner writes it: ``meta`` with the config text and dataset metainfo, ``state_dict``,
``message_hub``, ``optimizer``), ``OUT_DIR/images.pt`` (RGB 0..255 inputs),
``OUT_DIR/reference.pt`` (its ``simcc_x``, ``simcc_y`` and parameter count), and two more
architectures from mmpose's configs: ``rtmpose-t-body17.pth`` (COCO body-17, a bare state dict)
and ``rtmw-m.pth`` (RTMW-m, CSPNeXt + PAFPN neck + RTMWHead, ``{'meta', 'state_dict'}``).

    python tests/mmpose_rtmpose_reference.py OUT_DIR PERSONS_JSON

also runs mmpose's own top-down inference with the RTMPose-m model (the config's val pipeline:
LoadImage, GetBBoxCenterScale, TopdownAffine, PackPoseInputs; then ``model.test_step`` with the
config's ``flip_test=True``) on ``{"persons": [{"file", "bbox_xyxy"}]}`` and writes the image
keypoints (N, K, 2) and scores (N, K) to ``OUT_DIR/topdown.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types

import torch


def install_mmcv_ops_import_shim() -> None:
    """Import shim for ``mmcv.ops``: mmcv-lite has no compiled ops, yet ``import mmpose.models`` reaches
    ``mmcv.ops.MultiScaleDeformableAttention`` through the ED-Pose head. Nothing of it runs for RTMPose;
    a module without the other ops keeps mmpose's own ``try: from mmcv.ops import ...`` fallbacks."""

    class MultiScaleDeformableAttention(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("mmcv.ops import shim: MultiScaleDeformableAttention is not available")

    shim = types.ModuleType("mmcv.ops")
    shim.MultiScaleDeformableAttention = MultiScaleDeformableAttention
    sys.modules["mmcv.ops"] = shim


def randomise(model: torch.nn.Module, generator: torch.Generator, images: torch.Tensor) -> None:
    """Random weights everywhere; BN statistics from a batch of ``images``, then scaled at random per channel
    (running_var x 0.25..4, mean shifted), so every tensor matters and activations stay finite."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("bn.weight", ".g", "res_scale.scale")):
                p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
            elif p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) * (1.0 / fan_in) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for module in norms:
            module.momentum = 1.0  # running statistics := this batch's
        model.train()
        model(images, None, mode="tensor")
        model.eval()
        for module in norms:
            module.momentum = 0.1
            std = module.running_var.sqrt()
            module.running_mean.add_(torch.randn(std.shape, generator=generator) * 0.2 * std)
            module.running_var.mul_(4.0 ** (torch.rand(std.shape, generator=generator) * 2 - 1))
            module.num_batches_tracked.fill_(1234)


def build(config_file: str):
    """mmpose's model of one of its own config files, with SyncBN made BN and no pretrained download."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmpose.registry import MODELS

    cfg = Config.fromfile(config_file)
    cfg.model.backbone.pop("_scope_", None)  # mmpose's own CSPNeXt (a copy of mmdet's, whose import needs mmcv.ops)
    cfg.model.backbone.init_cfg = None
    return cfg, revert_sync_batchnorm(MODELS.build(cfg.model)).eval()  # no torchvision: no init_model


def topdown(cfg, model, dataset_meta: dict, request_path: str, out_path: str) -> None:
    """mmpose's inference_topdown, spelled out (it lives in mmpose.apis, whose import needs torchvision)."""
    import numpy as np
    from mmengine.dataset import Compose, pseudo_collate

    pipeline = Compose(cfg.val_dataloader.dataset.pipeline)
    persons = json.load(open(request_path))["persons"]
    data = []
    for person in persons:
        info = dict(img_path=person["file"], bbox=np.asarray([person["bbox_xyxy"]], dtype=np.float64),
                    bbox_score=np.ones(1, dtype=np.float32))
        info.update(dataset_meta)
        data.append(pipeline(info))
    with torch.no_grad():
        results = model.test_step(pseudo_collate(data))
    json.dump({"keypoints": [r.pred_instances.keypoints[0].tolist() for r in results],
               "scores": [r.pred_instances.keypoint_scores[0].tolist() for r in results],
               "flip_test": bool(cfg.model.test_cfg.get("flip_test", False))}, open(out_path, "w"))


def main(out_dir: str, request_path: str | None = None) -> None:
    install_mmcv_ops_import_shim()
    import mmengine
    import mmpose
    import mmpose.models  # noqa: F401  (registers the models)
    from mmengine.logging import MessageHub
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    configs = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "configs")
    init_default_scope("mmpose")
    cfg, model = build(os.path.join(
        configs, "wholebody_2d_keypoint/rtmpose/coco-wholebody/rtmpose-m_8xb64-270e_coco-wholebody-256x192.py"))
    generator = torch.Generator().manual_seed(13)
    mean = torch.tensor(cfg.model.data_preprocessor.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.model.data_preprocessor.std).view(1, 3, 1, 1)
    randomise(model, generator, (torch.rand(8, 3, 256, 192, generator=generator) * 255 - mean) / std)

    os.makedirs(out_dir, exist_ok=True)
    dataset_meta = parse_pose_metainfo(dict(from_file=os.path.join(configs, "_base_/datasets/coco_wholebody.py")))
    hub = MessageHub.get_instance("wbt-reference")
    hub.update_scalar("train/loss", 0.0123)
    hub.update_info("epoch", 270)
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.05)
    checkpoint = {
        "meta": dict(epoch=270, iter=123456, cfg=cfg.pretty_text, seed=21, experiment_name="rtmpose-m-reference",
                     time=time.strftime("%Y%m%d_%H%M%S"), mmengine_version=mmengine.__version__,
                     dataset_meta=dataset_meta),
        "state_dict": weights_to_cpu(model.state_dict()),
        "message_hub": hub.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    save_checkpoint(checkpoint, os.path.join(out_dir, "rtmpose-m.pth"))

    images = torch.rand(3, 3, 256, 192, generator=generator) * 255  # RGB 0..255, as the student takes them
    with torch.no_grad():
        simcc_x, simcc_y = model((images - mean) / std, None, mode="tensor")
    torch.save(images, os.path.join(out_dir, "images.pt"))
    if request_path:
        model.dataset_meta = dataset_meta
        topdown(cfg, model, dataset_meta, request_path, os.path.join(out_dir, "topdown.json"))
    torch.save({"simcc_x": simcc_x, "simcc_y": simcc_y, "parameters": sum(p.numel() for p in model.parameters()),
                "mmpose_version": mmpose.__version__}, os.path.join(out_dir, "reference.pt"))

    _, body17 = build(os.path.join(configs, "body_2d_keypoint/rtmpose/coco/rtmpose-t_8xb256-420e_coco-256x192.py"))
    torch.save(body17.state_dict(), os.path.join(out_dir, "rtmpose-t-body17.pth"))
    rtmw_cfg, rtmw = build(os.path.join(
        configs, "wholebody_2d_keypoint/rtmpose/cocktail14/rtmw-m_8xb1024-270e_cocktail14-256x192.py"))
    save_checkpoint({"meta": dict(cfg=rtmw_cfg.pretty_text), "state_dict": rtmw.state_dict()},
                    os.path.join(out_dir, "rtmw-m.pth"))
    print(f"mmpose {mmpose.__version__}: RTMPose-m whole-body built, {sum(p.numel() for p in model.parameters())} "
          f"parameters, simcc {tuple(simcc_x.shape)} {tuple(simcc_y.shape)}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
