"""`wavegen train | generate | evaluate | demo`: train a WaveNet, hear it, measure it."""

from wavegen.cli import common as c
from wavegen.cli.common import arg, command, positive_float, positive_int
from wavegen.evaluate.demo import DEMO_PIECE

command("train", "train a WaveNet (resumes if --out holds a run)",
        arg("--config", metavar="FILE", help="TOML overrides of the defaults, e.g. configs/cpu.toml"), c.SET, c.DATA,
        c.RUN_DIR, call="wavegen.train.wavenet:train_wavenet", config="wavenet")
command("generate", "generate harpsichord audio with a trained WaveNet", c.CHECKPOINT,
        arg("--sketch", metavar="IN.{txt,mid}", help="notes to follow (88-key text or MIDI; a model trained with "
            "velocities plays a MIDI file's own, and 88-key text at its default velocity)"),
        arg("--seconds", type=positive_float, help="length (default: the sketch plus a 0.5 s release tail)"),
        c.TEMPERATURE, c.MIN_P, c.DENOISE, c.SEED,
        arg("--batch", type=positive_int, default=1, help="takes to write: OUT-1.wav, OUT-2.wav, ..."),
        arg("--style", help="a style the model was trained on (default: the sketch's header style)"),
        arg("--timbre", help="the harpsichord, for a model trained on several (its card lists them: e.g. "
            "fluidr3, musescore-coupled, timgm6mb; default: its first)"),
        arg("--plot", action="store_true", help="also write a PNG: spectrogram with the sketch's notes"),
        arg("--engine", choices=("auto", "fast", "c", "c16", "cbf16", "numba", "torch"), default="auto",
            help="fast: the compiled CPU path, with whichever kernel is faster here (measured once, cached; "
            "c, c16, cbf16 or numba force one; c16: the C kernel with its weights in fp16; cbf16: in bf16, "
            "with bf16 dot products); torch: the PyTorch step; auto (default): fast when it can"),
        arg("--threads", type=positive_int, help="threads for the fast path (default: one per take, up to the cores)"),
        arg("-o", "--output", required=True, metavar="OUT.wav"),
        call="wavegen.synth.takes:generate_takes", bar=("generating", "sample", "batch"))
command("doctor", "this machine's CPU, the generation kernels built for it, their measured speed and the "
        "one that plays", arg("--checkpoint", dest="model", metavar="PATH", help="the model to time (default: the "
                             "shipped harpsichord-cpu)"), call="wavegen.synth.kernels:doctor")
command("evaluate", "measure how well a model plays held-out pieces", c.CHECKPOINT, c.DATA,
        arg("--split", default="test", choices=("train", "valid", "test")),
        arg("--pieces", type=positive_int, default=5, help="held-out pieces to play (default 5)"),
        arg("--seconds", type=positive_float, default=15.0, help="seconds of each piece (default 15)"),
        arg("--corpus", metavar="NAME", help="only the held-out pieces of this corpus (their style), e.g. bach in "
            "a dataset built with --corpus all (default: the split's first pieces, whatever their corpus)"),
        arg("--timbre", help="in a dataset of several harpsichords, the one to measure (its pieces and SoundFont; "
            "default: the model's first timbre, or the one it was trained on)"), c.SEED,
        c.TEMPERATURE, c.MIN_P, c.DENOISE, arg("--sketches", metavar="DIR", default="data/sketches", help="a sketch suite played "
                                    "whole too (default data/sketches; none: the chorales only)"),
        arg("-o", "--output", default="evaluation/report.json", metavar="REPORT.json", help="the "
                                    "report (default evaluation/report.json); REPORT.md and REPORT-pieces/ beside it"),
        call="wavegen.evaluate.report:evaluate_to", progress=c.note)
command("demo", "the main job: the shipped WaveNet plays a held-out Bach chorale, beside its reference",
        arg("-o", "--output", dest="out_dir", metavar="DIR", default="demo", help="folder for the results (default: "
            "demo)"),
        arg("--piece", default=DEMO_PIECE, help=f"a Bach chorale in music21's corpus (default {DEMO_PIECE}, held out)"),
        arg("--checkpoint", dest="model", metavar="PATH", help="another model (default: the shipped harpsichord-cpu)"),
        arg("--seconds", type=positive_float, help="only the first seconds (default: the whole chorale)"), c.SEED,
        call="wavegen.evaluate.demo:demo", bar=("generating", "sample"))
