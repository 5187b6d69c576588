import ArgumentParser
import Snapshotter

// Parse and run by hand: `await StarlingCommand.main()` resolves to
// ParsableCommand's synchronous entry point, which refuses an async root
// command in debug builds.
do {
    var command = try StarlingCommand.parseAsRoot()
    if var asyncCommand = command as? any AsyncParsableCommand {
        try await asyncCommand.run()
    } else {
        try command.run()
    }
} catch {
    StarlingCommand.exit(withError: error)
}
