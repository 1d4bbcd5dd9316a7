"""A search host's settings that the command line shows before it runs anything: heartbeat and grace
(`coordinator`, `liveness`), which checkpoints stay (`keep`) and finalize's defaults (`finalize`). This
module imports nothing, so `resnas --help` and a refused study file cost no import of Optuna or torch."""

HEARTBEAT, GRACE = 10, 60  # seconds: heartbeat interval, and silence after which a trial is failed

BEST = 5  # the default K: the top of the leaderboard, what a user exports
DEFAULT_KEEP = f"best:{BEST}"
KEEP_HELP = (
    "Which trials' checkpoints stay on disk: best:K (the final weights of the K best on the leaderboard; "
    "default best:5), ranked (of every ranked trial), all (everything, optimizer state included) or none. "
    "A running or interrupted trial keeps the state it resumes from."
)

EPOCHS_FACTOR = 3  # finalize: the final recipe's epochs, by default, per proxy epoch
DEFAULT_TOP, DEFAULT_SEEDS = 3, 3  # finalize: architectures re-trained, seeds each
