import CFuse3
import Foundation
import Logging

/// The `fuse_lowlevel_ops` table: one `@convention(c)` callback per kernel
/// request. Each callback finds the Swift filesystem through the session's
/// userdata (`FuseSessionContext`, unretained: the session keeps it alive),
/// calls the matching `FuseRequestHandler` method, and answers with exactly
/// one `fuse_reply_*`. Raw pointers from libfuse never leave this file.
enum FuseOperationTable {
    static func make() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()

        ops.`init` = { userdata, connection in
            guard let userdata, let connection else { return }
            let context = Unmanaged<FuseSessionContext>.fromOpaque(userdata).takeUnretainedValue()
            var settings = FuseConnection(
                capable: FuseCapabilities(rawValue: connection.pointee.capable),
                wanted: FuseCapabilities(rawValue: connection.pointee.want),
                maxRead: connection.pointee.max_read,
                maxWrite: connection.pointee.max_write,
                maxReadahead: connection.pointee.max_readahead,
                maxBackground: connection.pointee.max_background,
                congestionThreshold: connection.pointee.congestion_threshold)
            context.handler.initialize(&settings)
            connection.pointee.want = settings.wanted.intersection(settings.capable).rawValue
            connection.pointee.max_write = settings.maxWrite
            connection.pointee.max_readahead = min(settings.maxReadahead, connection.pointee.max_readahead)
            connection.pointee.max_background = settings.maxBackground
            connection.pointee.congestion_threshold = settings.congestionThreshold
            context.logger.debug("FUSE connection initialized", metadata: [
                "protocol": "\(connection.pointee.proto_major).\(connection.pointee.proto_minor)",
                "want": "\(String(connection.pointee.want, radix: 16))",
                "max_read": "\(connection.pointee.max_read)",
                "max_write": "\(connection.pointee.max_write)",
                "max_readahead": "\(connection.pointee.max_readahead)",
            ])
        }

        ops.destroy = { userdata in
            guard let userdata else { return }
            Unmanaged<FuseSessionContext>.fromOpaque(userdata).takeUnretainedValue().handler.destroy()
        }

        ops.lookup = { request, parent, name in
            guard let handler = handler(of: request) else { fuse_reply_err(request, EIO); return }
            guard let name, let decoded = String(validatingCString: name) else {
                fuse_reply_err(request, ENOENT); return
            }
            do throws(FuseErrno) {
                replyEntry(request, try handler.lookup(parent: parent, name: decoded))
            } catch {
                fuse_reply_err(request, error.code)
            }
        }

        // Inodes of an immutable layer live as long as the mount: nothing to forget.
        ops.forget = { request, _, _ in fuse_reply_none(request) }
        ops.forget_multi = { request, _, _ in fuse_reply_none(request) }

        ops.getattr = { request, inode, _ in
            guard let handler = handler(of: request) else { fuse_reply_err(request, EIO); return }
            do throws(FuseErrno) {
                let (attributes, timeout) = try handler.attributes(of: inode)
                var status = makeStat(attributes)
                fuse_reply_attr(request, &status, timeout)
            } catch {
                fuse_reply_err(request, error.code)
            }
        }

        ops.readlink = { request, inode in
            guard let handler = handler(of: request) else { fuse_reply_err(request, EIO); return }
            do throws(FuseErrno) {
                let target = try handler.readLink(inode)
                fuse_reply_readlink(request, target)
            } catch {
                fuse_reply_err(request, error.code)
            }
        }

        ops.open = { request, inode, info in
            guard let handler = handler(of: request), let info else { fuse_reply_err(request, EIO); return }
            do throws(FuseErrno) {
                let reply = try handler.open(inode, flags: info.pointee.flags)
                apply(reply, to: info)
                fuse_reply_open(request, info)
            } catch {
                fuse_reply_err(request, error.code)
            }
        }

        ops.read = { request, inode, size, offset, info in
            guard let context = context(of: request) else { fuse_reply_err(request, EIO); return }
            let handler = context.handler
            do throws(FuseErrno) {
                let bytes = try handler.read(inode, handle: info?.pointee.fh ?? 0, offset: Int64(offset), size: size)
                bytes.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) {
                        _ = fuse_reply_buf(request, $0.baseAddress, $0.count)
                    }
                }
            } catch {
                fuse_reply_err(request, error.code)
            }
            if handler.contentChanges(inode) { context.cacheInvalidator.dropCachedData(of: inode) }
        }

        ops.release = { request, inode, info in
            if let handler = handler(of: request) {
                handler.release(inode, handle: info?.pointee.fh ?? 0)
            }
            fuse_reply_err(request, 0)
        }

        ops.opendir = { request, inode, info in
            guard let handler = handler(of: request), let info else { fuse_reply_err(request, EIO); return }
            do throws(FuseErrno) {
                let reply = try handler.openDirectory(inode)
                apply(reply, to: info)
                fuse_reply_open(request, info)
            } catch {
                fuse_reply_err(request, error.code)
            }
        }

        ops.readdir = { request, inode, size, offset, info in
            replyDirectory(request, inode, size, offset, info, plus: false)
        }
        ops.readdirplus = { request, inode, size, offset, info in
            replyDirectory(request, inode, size, offset, info, plus: true)
        }

        ops.releasedir = { request, inode, info in
            if let handler = handler(of: request) {
                handler.releaseDirectory(inode, handle: info?.pointee.fh ?? 0)
            }
            fuse_reply_err(request, 0)
        }

        ops.statfs = { request, _ in
            guard let handler = handler(of: request) else { fuse_reply_err(request, EIO); return }
            let numbers = handler.statistics()
            var result = statvfs()
            result.f_bsize = numbers.blockSize
            result.f_frsize = numbers.blockSize
            result.f_blocks = UInt(numbers.totalBlocks)
            result.f_files = UInt(numbers.totalInodes)
            result.f_namemax = numbers.maximumNameLength
            fuse_reply_statfs(request, &result)
        }

        ops.getxattr = { request, inode, name, size in
            guard let handler = handler(of: request) else { fuse_reply_err(request, EIO); return }
            guard let name, let decoded = String(validatingCString: name) else {
                fuse_reply_err(request, ENODATA); return
            }
            do throws(FuseErrno) {
                replySized(request, try handler.extendedAttribute(of: inode, name: decoded), limit: size)
            } catch {
                fuse_reply_err(request, error.code)
            }
        }

        ops.listxattr = { request, inode, size in
            guard let handler = handler(of: request) else { fuse_reply_err(request, EIO); return }
            do throws(FuseErrno) {
                var list: [UInt8] = []
                for name in try handler.extendedAttributeNames(of: inode) {
                    list.append(contentsOf: name.utf8)
                    list.append(0)
                }
                replySized(request, list, limit: size)
            } catch {
                fuse_reply_err(request, error.code)
            }
        }

        // Nothing to flush or sync on a read-only filesystem. ENOSYS for
        // FLUSH tells the kernel so once: closes then need no round trip.
        ops.flush = { request, _, _ in fuse_reply_err(request, ENOSYS) }
        ops.fsync = { request, _, _, _ in fuse_reply_err(request, 0) }
        ops.fsyncdir = { request, _, _, _ in fuse_reply_err(request, 0) }

        // Every modification: the layer is immutable.
        ops.setattr = { request, _, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.mknod = { request, _, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.mkdir = { request, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.unlink = { request, _, _ in fuse_reply_err(request, EROFS) }
        ops.rmdir = { request, _, _ in fuse_reply_err(request, EROFS) }
        ops.symlink = { request, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.rename = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.link = { request, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.write = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.create = { request, _, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.setxattr = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.removexattr = { request, _, _ in fuse_reply_err(request, EROFS) }
        ops.fallocate = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
        ops.copy_file_range = { request, _, _, _, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
        return ops
    }
}

// MARK: - helpers (file-private: they handle libfuse pointers)

/// The filesystem behind a request (nil only if libfuse lost the userdata,
/// which callers answer with EIO).
private func handler(of request: fuse_req_t?) -> (any FuseRequestHandler)? {
    context(of: request)?.handler
}

private func context(of request: fuse_req_t?) -> FuseSessionContext? {
    guard let userdata = fuse_req_userdata(request) else { return nil }
    return Unmanaged<FuseSessionContext>.fromOpaque(userdata).takeUnretainedValue()
}

private func makeStat(_ attributes: FuseAttributes) -> stat {
    var status = stat()
    status.st_ino = UInt(attributes.inode)
    status.st_mode = attributes.mode
    status.st_nlink = UInt(attributes.linkCount)
    status.st_uid = attributes.uid
    status.st_gid = attributes.gid
    status.st_rdev = UInt(attributes.device)
    status.st_size = Int(attributes.size)
    status.st_blocks = Int(attributes.blocks)
    status.st_blksize = 4096
    let time = timespec(tv_sec: Int(attributes.modificationTime), tv_nsec: Int(attributes.modificationNanoseconds))
    status.st_atim = time
    status.st_mtim = time
    status.st_ctim = time
    return status
}

private func makeEntryParameter(_ entry: FuseEntry) -> fuse_entry_param {
    var parameter = fuse_entry_param()
    if let attributes = entry.attributes {
        parameter.ino = attributes.inode
        parameter.attr = makeStat(attributes)
    }
    parameter.generation = 0
    parameter.entry_timeout = entry.entryTimeout
    parameter.attr_timeout = entry.attributeTimeout
    return parameter
}

private func replyEntry(_ request: fuse_req_t?, _ entry: FuseEntry) {
    var parameter = makeEntryParameter(entry)
    fuse_reply_entry(request, &parameter)
}

private func apply(_ reply: FuseOpenReply, to info: UnsafeMutablePointer<fuse_file_info>) {
    info.pointee.fh = reply.handle
    info.pointee.keep_cache = reply.keepCache ? 1 : 0
    info.pointee.direct_io = reply.directIO ? 1 : 0
    info.pointee.cache_readdir = reply.cacheDirectory ? 1 : 0
}

/// getxattr/listxattr protocol: size 0 asks for the length, a too small
/// buffer is ERANGE, otherwise the bytes.
private func replySized(_ request: fuse_req_t?, _ bytes: [UInt8], limit: Int) {
    if limit == 0 {
        fuse_reply_xattr(request, bytes.count)
    } else if bytes.count > limit {
        fuse_reply_err(request, ERANGE)
    } else {
        bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                _ = fuse_reply_buf(request, $0.baseAddress, $0.count)
            }
        }
    }
}

/// Packs as many entries as fit into the kernel's buffer with
/// `fuse_add_direntry(_plus)` and replies once.
private func replyDirectory(_ request: fuse_req_t?, _ inode: fuse_ino_t, _ size: Int, _ offset: Int,
                            _ info: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
    guard let handler = handler(of: request) else { fuse_reply_err(request, EIO); return }
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(size, 1))
    defer { buffer.deallocate() }
    var used = 0
    do throws(FuseErrno) {
        try handler.readDirectory(inode, handle: info?.pointee.fh ?? 0, offset: Int64(offset)) { entry in
            let remaining = size - used
            let needed: Int
            if plus {
                var parameter = makeEntryParameter(FuseEntry(
                    attributes: entry.attributes, entryTimeout: entry.entryTimeout,
                    attributeTimeout: entry.attributeTimeout))
                needed = fuse_add_direntry_plus(request, buffer + used, remaining, entry.name,
                                                &parameter, Int(entry.nextOffset))
            } else {
                var status = stat()
                status.st_ino = UInt(entry.attributes.inode)
                status.st_mode = entry.attributes.mode
                needed = fuse_add_direntry(request, buffer + used, remaining, entry.name,
                                           &status, Int(entry.nextOffset))
            }
            guard needed <= remaining else { return false }
            used += needed
            return true
        }
        fuse_reply_buf(request, buffer, used)
    } catch {
        fuse_reply_err(request, error.code)
    }
}
