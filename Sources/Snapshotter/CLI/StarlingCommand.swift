import ArgumentParser
import BuildInfo

/// The `starling` command line. Each subcommand lives in its own file under
/// `CLI/` and is listed here only once it works.
public struct StarlingCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "starling",
        abstract: "A containerd remote snapshotter: lazy eStargz layers over FUSE, CVMFS layers in place.",
        version: BuildInfo.summary,
        subcommands: [ServeCommand.self, StatusCommand.self, OptimizeCommand.self, IndexCommand.self, LayerCommand.self,
                      CVMFSCommand.self]
    )

    public init() {}
}

/// `starling layer ...`: tools that work on one layer blob.
struct LayerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layer",
        abstract: "Convert, inspect, extract or mount one layer blob.",
        subcommands: [LayerConvertCommand.self, LayerInspectCommand.self, LayerExtractCommand.self, LayerMountCommand.self]
    )
}
