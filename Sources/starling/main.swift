import Snapshotter

await StarlingCommand.main()
