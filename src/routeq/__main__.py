from routeq.cli import main

main()
