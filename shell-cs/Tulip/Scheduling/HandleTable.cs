using System.Runtime.CompilerServices;

namespace Tulip.Scheduling;

/// <summary>
/// The shell's side of "only ids cross the boundary": a slab of live handles indexed by the low 32 bits
/// of their id. The high 32 bits are a stamp taken from a counter at registration, so an id that
/// outlived its handle (cancelled while queued, the slot reused since) never finds the new occupant.
/// Live ids are unique because live handles hold distinct slots. Ids fit in 62 bits. Loop thread only.
/// </summary>
internal sealed class HandleTable
{
    private Handle?[] _slots = new Handle?[1024];
    private int[] _free = new int[1024];
    private int _freeCount;
    private int _used; // slots ever handed out (high-water mark)
    private uint _stamp;
    private const uint StampMask = 0x3FFF_FFFF; // 30 bits: the top two bits of a handle's word hold its state
    private int _live;

    public int Live => _live;

    public long Register(Handle h)
    {
        int slot;
        if (_freeCount > 0)
        {
            slot = _free[--_freeCount];
        }
        else
        {
            if (_used == _slots.Length)
            {
                Array.Resize(ref _slots, _slots.Length * 2);
            }

            slot = _used++;
        }

        long id = ((long)(++_stamp & StampMask) << 32) | (uint)slot;
        _slots[slot] = h;
        h.Id = id;
        _live++;
        return id;
    }

    /// <summary>The live handle with this id, or null if it is gone (ran, cancelled, stale id).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Handle? Find(long id)
    {
        var h = _slots[(int)(uint)id];
        return h is not null && h.Id == id ? h : null;
    }

    /// <summary>Frees the handle's slot; its id is stale from now on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Release(Handle h)
    {
        int slot = (int)(uint)h.Id;
        if (!ReferenceEquals(_slots[slot], h))
        {
            return;
        }

        _slots[slot] = null;
        if (_freeCount == _free.Length)
        {
            Array.Resize(ref _free, _free.Length * 2);
        }

        _free[_freeCount++] = slot;
        _live--;
    }

    public void Clear()
    {
        Array.Clear(_slots);
        _freeCount = 0;
        _used = 0;
        _live = 0;
    }
}
