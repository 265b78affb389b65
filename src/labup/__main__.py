from labup.cli import main

main()
