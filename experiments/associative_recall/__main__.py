"""Entry point: ``python -m experiments.associative_recall [--preset cpu|gpu|tpu] [--resume]``."""

from experiments.associative_recall.run import main

if __name__ == "__main__":
    main()
