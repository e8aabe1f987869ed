from gemma_serving.cli import main

main()
