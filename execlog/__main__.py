from execlog.cli import main

main()
