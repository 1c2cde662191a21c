using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models;

/// <summary>
/// Keys and values of past positions, one pair per decoder layer, each <c>[B, kv_heads, Length, head_dim]</c> (before
/// grouped-query repetition). Storage is preallocated and doubled when full, so a token-by-token decode copies each
/// position O(1) times. The cache owns its tensors (outside every dispose scope); <see cref="Dispose"/> frees them.
/// Create it with <see cref="PretrainedModel.CreateCache"/> and pass it in <see cref="ModelInput.Cache"/>: every forward
/// appends its positions. Meant for inference; under autograd the current positions keep their gradient, cached ones
/// are constants.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] _keys;
    private readonly Tensor?[] _values;
    private readonly int[] _lengths;
    private bool _disposed;

    /// <summary>A cache for <paramref name="numLayers"/> layers.</summary>
    public KvCache(int numLayers)
    {
        if (numLayers <= 0)
        {
            throw new PeftException($"KvCache: numLayers must be > 0, got {numLayers}");
        }
        _keys = new Tensor?[numLayers];
        _values = new Tensor?[numLayers];
        _lengths = new int[numLayers];
    }

    /// <summary>Number of layers.</summary>
    public int NumLayers => _lengths.Length;

    /// <summary>Cached positions (of the first layer; all layers agree between forwards).</summary>
    public int Length => _lengths[0];

    /// <summary>Batch size of the cached rows, or null while empty.</summary>
    public long? BatchSize => _keys[0]?.shape[0];

    /// <summary>
    /// Appends <paramref name="key"/>/<paramref name="value"/> (<c>[B, H, T, D]</c>) to layer <paramref name="layer"/>
    /// and returns views of all cached positions, <c>[B, H, Length + T, D]</c>. The views belong to the caller's
    /// dispose scope; the storage stays with the cache.
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor key, Tensor value)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((uint)layer >= (uint)_lengths.Length)
        {
            throw new PeftException($"KvCache: layer {layer} out of range (cache has {_lengths.Length} layers)");
        }
        var past = _lengths[layer];
        var t = (int)key.shape[2];
        var stored = _keys[layer];
        if (stored is not null)
        {
            if (stored.shape[0] != key.shape[0] || stored.shape[1] != key.shape[1] || stored.shape[3] != key.shape[3]
                || stored.dtype != key.dtype || stored.device_type != key.device_type || stored.device_index != key.device_index)
            {
                throw new PeftException(
                    $"KvCache: layer {layer} holds [{stored.shape[0]}, {stored.shape[1]}, *, {stored.shape[3]}] {stored.dtype} on {stored.device}; "
                    + $"the new keys are [{string.Join(", ", key.shape)}] {key.dtype} on {key.device}");
            }
        }
        if (stored is null || past + t > stored.shape[2])
        {
            var capacity = Math.Max(past + t, stored is null ? t : (int)stored.shape[2] * 2);
            Grow(layer, key, value, capacity);
        }
        using (torch.no_grad())
        {
            _keys[layer]!.narrow(2, past, t).copy_(key);
            _values[layer]!.narrow(2, past, t).copy_(value);
        }
        _lengths[layer] = past + t;
        if (key.requires_grad || value.requires_grad)
        {
            // The stored copy carries no autograd history; return the new positions themselves so gradients still
            // reach the projections that produced them (the cached past acts as a constant).
            return (
                torch.cat([_keys[layer]!.narrow(2, 0, past), key], 2),
                torch.cat([_values[layer]!.narrow(2, 0, past), value], 2));
        }
        return (_keys[layer]!.narrow(2, 0, past + t), _values[layer]!.narrow(2, 0, past + t));
    }

    /// <summary>Frees the cached tensors.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        for (var i = 0; i < _keys.Length; i++)
        {
            _keys[i]?.Dispose();
            _values[i]?.Dispose();
            _keys[i] = null;
            _values[i] = null;
        }
    }

    private void Grow(int layer, Tensor key, Tensor value, int capacity)
    {
        var past = _lengths[layer];
        var newKeys = torch.empty([key.shape[0], key.shape[1], capacity, key.shape[3]], dtype: key.dtype, device: key.device);
        var newValues = torch.empty([value.shape[0], value.shape[1], capacity, value.shape[3]], dtype: value.dtype, device: value.device);
        newKeys.DetachFromDisposeScope();
        newValues.DetachFromDisposeScope();
        var oldKeys = _keys[layer];
        var oldValues = _values[layer];
        if (oldKeys is not null && oldValues is not null && past > 0)
        {
            using (torch.no_grad())
            using (var scope = torch.NewDisposeScope())
            {
                newKeys.narrow(2, 0, past).copy_(oldKeys.narrow(2, 0, past));
                newValues.narrow(2, 0, past).copy_(oldValues.narrow(2, 0, past));
            }
        }
        oldKeys?.Dispose();
        oldValues?.Dispose();
        _keys[layer] = newKeys;
        _values[layer] = newValues;
    }
}
