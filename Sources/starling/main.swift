import Snapshotter

// Every command is synchronous at the top (`serve` runs its async daemon
// inside): ArgumentParser's async entry points resolve to their synchronous
// twins under Swift 6, which print help instead of running the command.
StarlingCommand.main()
