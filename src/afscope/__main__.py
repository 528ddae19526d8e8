from afscope.cli import main

main()
