"""Tiny random-weight checkpoints of the real transformers classes, saved with ``save_pretrained``.

Tests load them through the same ``from_pretrained(local_dir)`` path users take with real weights,
offline, in milliseconds. Tokenizers are built here from a handful of words.

    >>> from tests.tiny_models import build_tiny_teacher
    >>> teacher = build_tiny_teacher("grounded-sam2", tmp_path)   # Teacher with tiny weights
    >>> teacher.label([rgb], "spacecraft")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

WORDS = ["spacecraft", "satellite", "solar", "panel", "a", "photo", "of", "the", "station", "rocket"]
SEED = 0


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable character table (CLIP's vocab needs all 256)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def tiny_clip_tokenizer():
    """A CLIP BPE tokenizer knowing every byte plus `WORDS` as whole tokens."""
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars + [c + "</w>" for c in chars]:
        vocab[c] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        pieces = list(word)
        pieces[-1] += "</w>"
        cur = pieces[0]
        for p in pieces[1:]:
            if (cur, p) not in merges:
                merges.append((cur, p))
            cur += p
            vocab.setdefault(cur, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges)


def tiny_bert_tokenizer():
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)  # vocab=, not vocab_file=


def save_grounding_dino(folder: Path, mm: bool = False) -> Path:
    """Grounding DINO (or, with ``mm``, MM-Grounding-DINO) with a Swin backbone and a tiny BERT."""
    import torch
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tok = tiny_bert_tokenizer()
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                          window_size=2, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32)
    config_cls, model_cls = GroundingDinoConfig, GroundingDinoForObjectDetection
    if mm:
        from transformers import MMGroundingDinoConfig, MMGroundingDinoForObjectDetection

        config_cls, model_cls = MMGroundingDinoConfig, MMGroundingDinoForObjectDetection
    config = config_cls(backbone_config=backbone, text_config=text, num_queries=10, encoder_layers=1,
                        decoder_layers=2, d_model=32, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_n_points=2,
                        decoder_n_points=2, max_text_len=32)
    torch.manual_seed(SEED)
    model_cls(config).save_pretrained(folder)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def _sam2_parts() -> dict[str, Any]:
    """The tiny SAM 2 sub-configs (vision, prompt encoder, mask decoder) both SAM 2 layouts share."""
    from transformers import (
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    # 2 blocks in stages 2 and 3 so the global-attention block is not the first of a q-pool stage.
    hiera = Sam2HieraDetConfig(hidden_size=8, image_size=[64, 64], blocks_per_stage=[1, 2, 2, 1],
                               embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 1, 1],
                               window_size_per_stage=[4, 2, 2, 1], global_attention_blocks=[4],
                               window_positional_embedding_background_size=[2, 2])
    vision = Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[64, 32, 16, 8],
                              backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]], fpn_hidden_size=32)
    return {"vision_config": vision,
            "prompt_encoder_config": Sam2PromptEncoderConfig(hidden_size=32, image_size=64, patch_size=16).to_dict(),
            "mask_decoder_config": Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=32, num_attention_heads=2,
                                                         iou_head_hidden_dim=32).to_dict()}


def _save_sam2_processor(folder: Path) -> None:
    from transformers import Sam2ImageProcessor, Sam2Processor

    Sam2Processor(image_processor=Sam2ImageProcessor(size={"height": 64, "width": 64})).save_pretrained(folder)


def save_sam2(folder: Path) -> Path:
    """SAM 2 as the image model (``Sam2Model``, model type ``sam2``)."""
    import torch
    from transformers import Sam2Config, Sam2Model

    torch.manual_seed(SEED)
    Sam2Model(Sam2Config(**_sam2_parts())).save_pretrained(folder)
    _save_sam2_processor(folder)
    return folder


def save_sam2_video(folder: Path) -> Path:
    """SAM 2.1 laid out like the hub's ``facebook/sam2.1-hiera-*``: the video model (``Sam2VideoModel``,
    model type ``sam2_video``, memory-attention and memory-encoder weights beside the image model's),
    which ``Sam2Model.from_pretrained`` loads without the memory parts. The hub layout is known from a
    public copy of the hiera-large config.json (``model_type: sam2_video``, ``architectures:
    ["Sam2VideoModel"]``); the rest of its keys are what ``Sam2VideoConfig.to_dict()`` writes."""
    import torch
    from transformers import Sam2VideoConfig, Sam2VideoModel

    config = Sam2VideoConfig(**_sam2_parts(), image_size=64, memory_attention_hidden_size=32,
                             memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=32,
                             memory_attention_rope_feat_sizes=[4, 4], memory_encoder_hidden_size=32,
                             memory_encoder_output_channels=16, mask_downsampler_embed_dim=32,
                             memory_fuser_num_layers=1, memory_fuser_embed_dim=32, memory_fuser_intermediate_dim=32)
    torch.manual_seed(SEED)
    Sam2VideoModel(config).save_pretrained(folder)
    _save_sam2_processor(folder)
    return folder


def save_sam(folder: Path) -> Path:
    """SAM (v1) with a 64 px input: exercises the longest-side resize + pad path."""
    import torch
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    vision = SamVisionConfig(hidden_size=16, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                             mlp_dim=32, image_size=64, patch_size=16, window_size=2, global_attn_indexes=[1],
                             num_pos_feats=8)
    config = SamConfig(vision_config=vision,
                       prompt_encoder_config=SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=16,
                                                                    mask_input_channels=4),
                       mask_decoder_config=SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_attention_heads=2,
                                                                iou_head_hidden_dim=16))
    torch.manual_seed(SEED)
    SamModel(config).save_pretrained(folder)
    image_processor = SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                                        mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})
    SamProcessor(image_processor=image_processor).save_pretrained(folder)
    return folder


def save_owlv2(folder: Path) -> Path:
    import torch
    from transformers import (
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
        Owlv2TextConfig,
        Owlv2VisionConfig,
    )

    tok = tiny_clip_tokenizer()
    ids = tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    text = Owlv2TextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, max_position_embeddings=16, bos_token_id=ids[0],
                           eos_token_id=ids[1], pad_token_id=ids[1])
    vision = Owlv2VisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                               image_size=64, patch_size=16)
    config = Owlv2Config(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)
    torch.manual_seed(SEED)
    Owlv2ForObjectDetection(config).save_pretrained(folder)
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}),
                   tokenizer=tok).save_pretrained(folder)
    return folder


def _sam3_config_and_tokenizer():
    from transformers import (
        CLIPTextConfig,
        Sam3Config,
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3MaskDecoderConfig,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    tok = tiny_clip_tokenizer()
    ids = tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    vit = Sam3ViTConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                        image_size=56, patch_size=14, window_size=2, global_attn_indexes=[1], pretrain_image_size=56)
    vision = Sam3VisionConfig(backbone_config=vit, fpn_hidden_size=32, backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]])
    text = CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=32, projection_dim=16,
                          bos_token_id=ids[0], eos_token_id=ids[1], pad_token_id=ids[1])
    small = {"hidden_size": 32, "num_attention_heads": 2}
    config = Sam3Config(
        vision_config=vision, text_config=text,
        geometry_encoder_config=Sam3GeometryEncoderConfig(num_layers=1, intermediate_size=32, **small),
        detr_encoder_config=Sam3DETREncoderConfig(num_layers=1, intermediate_size=32, **small),
        detr_decoder_config=Sam3DETRDecoderConfig(num_layers=1, num_queries=10, intermediate_size=32, **small),
        mask_decoder_config=Sam3MaskDecoderConfig(num_upsampling_stages=3, **small))
    return config, tok


def _save_sam3_processor(folder: Path, tok) -> None:
    from transformers import Sam3ImageProcessor, Sam3Processor

    Sam3Processor(image_processor=Sam3ImageProcessor(size={"height": 56, "width": 56}),
                  tokenizer=tok).save_pretrained(folder)


def save_sam3(folder: Path) -> Path:
    """SAM 3 as the image model (``Sam3Model``, model type ``sam3``)."""
    import torch
    from transformers import Sam3Model

    config, tok = _sam3_config_and_tokenizer()
    torch.manual_seed(SEED)
    Sam3Model(config).save_pretrained(folder)
    _save_sam3_processor(folder, tok)
    return folder


def save_sam3_video(folder: Path) -> Path:
    """SAM 3 laid out like the hub's ``facebook/sam3``: the video model (``Sam3VideoModel``, model type
    ``sam3_video``, a ``Sam3VideoConfig`` whose ``detector_config`` is the image model's Sam3Config and
    whose ``tracker_config`` is a ``sam3_tracker_video`` config), weights under ``detector_model.*``
    beside ``tracker_model.*`` / ``tracker_neck.*``. ``Sam3Model.from_pretrained`` loads the detector
    (transformers' Sam3Model takes ``config.detector_config`` and ignores the tracker weights). The
    detector's weights equal `save_sam3`'s."""
    import torch
    from transformers import Sam3Model, Sam3TrackerVideoConfig, Sam3VideoConfig, Sam3VideoModel
    from transformers.models.sam3_tracker_video.configuration_sam3_tracker_video import (
        Sam3TrackerVideoMaskDecoderConfig,
        Sam3TrackerVideoPromptEncoderConfig,
    )

    detector, tok = _sam3_config_and_tokenizer()
    tracker = Sam3TrackerVideoConfig(
        image_size=56, vision_config=detector.vision_config.to_dict(),  # a copy: image_size propagates into it
        prompt_encoder_config=Sam3TrackerVideoPromptEncoderConfig(hidden_size=32, image_size=56, patch_size=14),
        mask_decoder_config=Sam3TrackerVideoMaskDecoderConfig(hidden_size=32, mlp_dim=32, num_attention_heads=2,
                                                              iou_head_hidden_dim=32),
        memory_attention_hidden_size=32, memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=32,
        memory_encoder_hidden_size=32, memory_encoder_output_channels=16, mask_downsampler_embed_dim=32,
        memory_fuser_num_layers=1, memory_fuser_embed_dim=32, memory_fuser_intermediate_dim=32)
    torch.manual_seed(SEED + 1)
    model = Sam3VideoModel(Sam3VideoConfig(detector_config=detector, tracker_config=tracker))
    torch.manual_seed(SEED)
    model.detector_model.load_state_dict(Sam3Model(detector).state_dict())  # the same detector as save_sam3
    model.save_pretrained(folder)
    _save_sam3_processor(folder, tok)
    return folder


def save_sam_hq(folder: Path) -> Path:
    """SAM-HQ (``SamHQModel``, model type ``sam_hq``, as ``syscv-community/sam-hq-vit-base``) with a 64 px input."""
    import torch
    from transformers import (
        SamHQConfig,
        SamHQMaskDecoderConfig,
        SamHQModel,
        SamHQProcessor,
        SamHQPromptEncoderConfig,
        SamHQVisionConfig,
        SamImageProcessor,
    )

    vision = SamHQVisionConfig(hidden_size=16, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                               mlp_dim=32, image_size=64, patch_size=16, window_size=2, global_attn_indexes=[1],
                               num_pos_feats=8)
    config = SamHQConfig(vision_config=vision,
                         prompt_encoder_config=SamHQPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=16,
                                                                        mask_input_channels=4),
                         mask_decoder_config=SamHQMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_attention_heads=2,
                                                                    iou_head_hidden_dim=16, vit_dim=16))
    torch.manual_seed(SEED)
    SamHQModel(config).save_pretrained(folder)
    image_processor = SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                                        mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})
    SamHQProcessor(image_processor=image_processor).save_pretrained(folder)
    return folder


BUILDERS = {
    "grounding-dino": save_grounding_dino,
    "mm-grounding-dino": lambda folder: save_grounding_dino(folder, mm=True),
    "sam2": save_sam2,
    "sam2-video": save_sam2_video,
    "sam": save_sam,
    "sam-hq": save_sam_hq,
    "owlv2": save_owlv2,
    "sam3": save_sam3,
    "sam3-video": save_sam3_video,
}


def tiny_model_dir(kind: str, root: str | os.PathLike) -> Path:
    """The folder of tiny checkpoint ``kind`` under ``root``, built on first use."""
    folder = Path(root) / kind
    if not (folder / "config.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        BUILDERS[kind](folder)
    return folder


def tiny_teacher_options(name: str, root: str | os.PathLike) -> dict[str, Any]:
    """``build_teacher`` options that point teacher ``name`` at tiny checkpoints (threshold 0: random
    weights score low, and tests want instances)."""
    if name == "grounded-sam2":
        return {"detector": str(tiny_model_dir("grounding-dino", root)), "segmenter": str(tiny_model_dir("sam2", root)),
                "box_threshold": 0.0, "device": "cpu"}
    if name == "owlv2-sam":
        return {"detector": str(tiny_model_dir("owlv2", root)), "segmenter": str(tiny_model_dir("sam2", root)),
                "box_threshold": 0.0, "device": "cpu"}
    if name == "sam3":
        return {"model": str(tiny_model_dir("sam3", root)), "segmenter": str(tiny_model_dir("sam2", root)),
                "box_threshold": 0.0, "device": "cpu"}
    raise KeyError(f"no tiny checkpoints for teacher {name!r}")


def build_tiny_teacher(name: str, root: str | os.PathLike, **options: Any):
    """Teacher ``name`` ("grounded-sam2", "owlv2-sam", "sam3") with tiny random weights from ``root``."""
    from afss.teachers import build_teacher

    return build_teacher(name, **{**tiny_teacher_options(name, root), **options})
