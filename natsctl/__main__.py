from natsctl.cli.main import main

main()
