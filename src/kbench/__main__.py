from kbench.cli.app import main

main()
