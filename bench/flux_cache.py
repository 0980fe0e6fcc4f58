"""A Hugging Face cache laid out as SN39's baseline expects it, filled with seeded random weights.

The spec-8 baseline (womboai/flux-schnell-edge-inference@2cff82c) loads CLIP, T5 and the VAE from
`black-forest-labs/FLUX.1-schnell` at revision 741f7c3 (`local_files_only=True`, by subfolder) and the
transformer from the snapshot directory of `RobertML/FLUX.1-schnell-int8wo` at 307e077
(`use_safetensors=False`). This writes those two snapshots: the same repository folders, snapshot
and subfolder names, configs with the real architecture (or a toy one with `--scale tiny`, to check
the layout on a CPU), the transformer as a pickled `diffusion_pytorch_model.bin` (plain bf16 tensors
where the real file holds torchao int8 ones), tokenizers whose vocabularies have the real sizes.
Nothing is downloaded. Run by hand:

    python bench/flux_cache.py --root /tmp/hf-cache [--scale full|tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

FLUX = ("black-forest-labs/FLUX.1-schnell", "741f7c3ce8b383c54771c7003378a50191e9efe9")
INT8WO = ("RobertML/FLUX.1-schnell-int8wo", "307e0777d92df966a3c0f99f31a6ee8957a9857a")

FULL = {
    "transformer": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                        num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                        guidance_embeds=False, axes_dims_rope=[16, 56, 56]),
    "clip": dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
                 bos_token_id=49406, eos_token_id=49407, pad_token_id=1),
    "t5": dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
               relative_attention_num_buckets=32, relative_attention_max_distance=128,
               feed_forward_proj="gated-gelu", dropout_rate=0.1, pad_token_id=0, eos_token_id=1,
               decoder_start_token_id=0, tie_word_embeddings=False),
    "vae": dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512],
                layers_per_block=2, latent_channels=16, norm_num_groups=32, sample_size=1024,
                scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
}
TINY = {
    "transformer": dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
                        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                        guidance_embeds=False, axes_dims_rope=[4, 4, 8]),
    "clip": dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32, bos_token_id=49406,
                 eos_token_id=49407, pad_token_id=1),
    "t5": dict(vocab_size=32128, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
               relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", dropout_rate=0.0, pad_token_id=0,
               eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=False),
    "vae": dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 8, 8, 8], layers_per_block=1,
                latent_channels=16, norm_num_groups=4, sample_size=32, scaling_factor=0.3611,
                shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
}
MODEL_INDEX = {
    "_class_name": "FluxPipeline", "_diffusers_version": "0.30.0.dev0",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
}
SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.0,
             "use_dynamic_shifting": False, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
             "max_image_seq_len": 4096}


def snapshot(root: Path, repository: str, revision: str) -> Path:
    """`models--OWNER--NAME/snapshots/REVISION`, with `refs/main` naming it, as huggingface_hub lays it out."""
    repo_dir = root / f"models--{repository.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    path = repo_dir / "snapshots" / revision
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tokenizers(directory: Path) -> None:
    """CLIP's byte-level BPE layout and a T5 unigram tokenizer, with the real vocabulary sizes
    (49408 and 32000 + 100 sentinels), so every id fits the real embedding tables."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPTokenizer

    # transformers 5 folded T5TokenizerFast into T5Tokenizer (fast by default); 4.x has both.
    t5_class = getattr(transformers, "T5TokenizerFast", None) or transformers.T5Tokenizer

    clip_dir, t5_dir = directory / "tokenizer", directory / "tokenizer_2"
    clip_dir.mkdir(exist_ok=True)
    t5_dir.mkdir(exist_ok=True)
    vocab = {f"tok{i}</w>": i for i in range(49406)}
    vocab.update({chr(c): i for i, c in enumerate(range(97, 123))})  # letters, for a readable tokenisation
    vocab.update({"<|startoftext|>": 49406, "<|endoftext|>": 49407})
    (clip_dir / "vocab.json").write_text(json.dumps(vocab))
    (clip_dir / "merges.txt").write_text("#version: 0.2\n")
    clip = CLIPTokenizer(vocab_file=str(clip_dir / "vocab.json"), merges_file=str(clip_dir / "merges.txt"),
                         pad_token="<|endoftext|>")
    clip.model_max_length = 77
    clip.save_pretrained(clip_dir)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [(f"\u2581w{i}", -10.0 - i / 1e4) for i in range(32000 - len(pieces) - 26)]
    pieces += [(chr(c), -5.0) for c in range(97, 123)]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.save(str(t5_dir / "tokenizer.json"))
    t5 = t5_class(tokenizer_file=str(t5_dir / "tokenizer.json"), extra_ids=100, pad_token="<pad>",
                         eos_token="</s>", unk_token="<unk>")
    t5.model_max_length = 512
    t5.save_pretrained(t5_dir)


def build(root: Path, scale: dict[str, dict[str, Any]], device: str) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    started = time.perf_counter()
    flux = snapshot(root, *FLUX)
    (flux / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
    (flux / "scheduler").mkdir(exist_ok=True)
    (flux / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER, indent=2))
    _tokenizers(flux)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    sizes: dict[str, int] = {}
    try:
        with torch.device(device):
            for name, model in (
                ("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**scale["clip"]))),
                ("text_encoder_2", lambda: T5EncoderModel(T5Config(**scale["t5"]))),
                ("vae", lambda: AutoencoderKL(**scale["vae"])),
            ):
                built: Any = model()
                built.save_pretrained(flux / name, max_shard_size="5GB")
                sizes[name] = sum(p.numel() * p.element_size() for p in built.parameters())
                del built
            transformer: Any = FluxTransformer2DModel(**scale["transformer"])
            int8wo = snapshot(root, *INT8WO)
            transformer.save_config(int8wo)
            # Pickled, as the real repository ships it (its tensors are torchao int8; plain bf16 here).
            torch.save({k: v.to("cpu") for k, v in transformer.state_dict().items()},
                       int8wo / "diffusion_pytorch_model.bin")
            sizes["transformer"] = sum(p.numel() * p.element_size() for p in transformer.parameters())
            del transformer
    finally:
        torch.set_default_dtype(previous)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    os.system(f"chmod -R a+rX {root}")  # the sandbox user reads it (read-only mount)
    return {"seconds": round(time.perf_counter() - started, 1), "parameter_bytes": sizes,
            "files": len(files), "bytes_on_disk": sum(p.stat().st_size for p in files)}


def drop_page_cache(root: Path) -> int:
    """Evict the layout's files from the page cache (POSIX_FADV_DONTNEED: no privilege needed), so the
    next load reads from disk. Returns the bytes advised."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                total += os.fstat(fd).st_size
            finally:
                os.close(fd)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--scale", choices=["full", "tiny"], default="full")
    parser.add_argument("--device", default=None, help="where weights are made (default: cuda for full)")
    args = parser.parse_args()
    device = args.device or ("cuda" if args.scale == "full" else "cpu")
    print(json.dumps(build(args.root, FULL if args.scale == "full" else TINY, device)))


if __name__ == "__main__":
    main()
