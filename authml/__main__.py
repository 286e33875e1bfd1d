from authml.cli import main

main()
