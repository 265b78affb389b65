from labup.entry import main

main()
