from effnet_cli.cli import run

run()
