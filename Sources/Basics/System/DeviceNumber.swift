/// Linux's `dev_t` encoding of a device's major and minor numbers (glibc's
/// `makedev`, whose low 32 bits are the kernel's new_encode_dev): what
/// mknod(2) and stat(2) use.
public enum DeviceNumber {
    public static func make(major: UInt32, minor: UInt32) -> UInt64 {
        let major = UInt64(major), minor = UInt64(minor)
        return (major & 0xfff) << 8 | (major & ~0xfff) << 32 | (minor & 0xff) | (minor & ~0xff) << 12
    }
}
