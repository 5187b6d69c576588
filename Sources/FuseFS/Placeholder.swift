// Placeholder so the package resolves; replaced by the module's real code.
enum _FuseFSPlaceholder {}
