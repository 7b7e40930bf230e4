from effnet_cli.cli.app import run

run()
