using System.Runtime.InteropServices;

namespace Tulip;

/// <summary>
/// Where a child's stdin, stdout or stderr goes (asyncio's <c>subprocess.PIPE</c>, <c>DEVNULL</c>,
/// <c>STDOUT</c>, <c>None</c>, a file object or a descriptor). Immutable; any thread.
/// </summary>
public sealed class SubprocessRedirect
{
    internal enum Kinds { Pipe, DevNull, Stdout, Inherit, Handle }

    internal Kinds Kind { get; }

    private readonly SafeHandle? _handle;
    private readonly int _fd;

    private SubprocessRedirect(Kinds kind, SafeHandle? handle = null, int fd = -1)
    {
        Kind = kind;
        _handle = handle;
        _fd = fd;
    }

    /// <summary>A pipe to the parent: a stream (or a pipe transport) on the loop.</summary>
    public static SubprocessRedirect Pipe { get; } = new(Kinds.Pipe);

    /// <summary>/dev/null.</summary>
    public static SubprocessRedirect DevNull { get; } = new(Kinds.DevNull);

    /// <summary>For stderr only: into wherever stdout goes (asyncio's <c>STDOUT</c>).</summary>
    public static SubprocessRedirect Stdout { get; } = new(Kinds.Stdout);

    /// <summary>The parent's own descriptor (asyncio's <c>None</c>).</summary>
    public static SubprocessRedirect Inherit { get; } = new(Kinds.Inherit);

    /// <summary>An open handle the child gets a copy of (a file, a pipe end, a socket). The caller keeps
    /// it and closes it when it likes: the child's copy is its own.</summary>
    public static SubprocessRedirect FromHandle(SafeHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        if (handle.IsInvalid || handle.IsClosed) throw new ArgumentException("the handle is closed or invalid", nameof(handle));
        return new(Kinds.Handle, handle);
    }

    /// <summary>An open file (or a <see cref="FileStream"/> over a pipe): the child writes or reads it directly.</summary>
    public static SubprocessRedirect FromFile(FileStream file)
    {
        ArgumentNullException.ThrowIfNull(file);
        file.Flush(); // what the parent wrote comes before what the child writes
        return FromHandle(file.SafeFileHandle);
    }

    /// <summary>A raw descriptor of the parent's (it must stay open until the spawn returns).</summary>
    public static SubprocessRedirect FromFileDescriptor(int fd)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        return new(Kinds.Handle, fd: fd);
    }

    /// <summary>The descriptor to give the child (Handle kind only).</summary>
    internal int Descriptor
    {
        get
        {
            if (_handle is null) return _fd;
            if (_handle.IsClosed) throw new ObjectDisposedException(nameof(SafeHandle), "the redirect's handle was closed");
            return (int)_handle.DangerousGetHandle();
        }
    }

    public override string ToString() => Kind switch
    {
        Kinds.Handle => $"SubprocessRedirect(fd {(_handle is null ? _fd : "handle")})",
        _ => $"SubprocessRedirect.{Kind}",
    };
}
