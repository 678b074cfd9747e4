"""`wavegen train-composer | compose | evaluate-composer`: composers of new sketches."""

from wavegen.cli import common as c
from wavegen.cli.common import arg, command, non_negative_float, one_of, positive_float, positive_int
from wavegen.compose.load import DEFAULT_COMPOSER

MODEL = {"metavar": "NAME|PATH", "help": f"composer model (default: the shipped {DEFAULT_COMPOSER})"}

command("train-composer", "train a composer of new sketches (Markov chain or LSTM)",
        arg("--config", metavar="FILE", help="configs/composer-markov.toml or configs/composer-lstm.toml"), c.SET,
        c.DATA, c.RUN_DIR, call="wavegen.train.composer:train_composer", config="composer")
command("compose", "write a new sketch in 88-key text (and play it)",
        arg("-o", "--output", metavar="OUT.txt", help="write here (default: standard output)"),
        one_of(arg("--seconds", type=positive_float, help="length in seconds (default 20)"),
               arg("--ticks", type=positive_int, help="length in ticks (with --form: rounded down to equal sections)")),
        arg("--temperature", type=non_negative_float, default=1.0), c.SEED,
        arg("--prime", metavar="IN.txt", help="88-key text to continue"),
        arg("--form", help="large-scale form, e.g. ABACABA: a section per new letter, repeated where it recurs"),
        arg("--style", help="a style the composer learned"), arg("--model", dest="composer", **MODEL),
        arg("--perform", dest="perform_to", metavar="OUT.wav", help="have the WaveNet play the sketch"),
        arg("--render", dest="render_to", metavar="OUT.wav", help="render the sketch with the SoundFont"),
        arg("--checkpoint", dest="model", metavar="PATH", help="the WaveNet for --perform and --stream (default: the "
            "shipped one)"),
        arg("--stream", dest="stream_to", metavar="OUT.wav|-", help="compose and play without end (or for --seconds), "
            "writing a WAV that grows (or to standard output); Ctrl-C or SIGTERM ends it cleanly"),
        call="wavegen.compose.perform:compose_and_play")
command("evaluate-composer", "held-out bits per tick, copy check and musical statistics", arg("--model", **MODEL),
        c.DATA, arg("--split", default="test", choices=("valid", "test")),
        arg("--samples", type=positive_int, default=5), arg("--seconds", type=positive_float, default=20.0),
        arg("--temperature", type=non_negative_float, default=1.0), c.SEED,
        arg("-o", "--output", metavar="REPORT.json"), call="wavegen.evaluate.composer:evaluate_composer_to")
