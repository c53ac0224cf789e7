from semsearch.cli import run

run()
