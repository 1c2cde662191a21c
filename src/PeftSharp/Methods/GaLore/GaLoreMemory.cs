using PeftSharp.Training.Optim;
using static TorchSharp.torch;

namespace PeftSharp.Methods.GaLore;

/// <summary>Optimizer-state sizes: GaLore's analytic formula and the bytes an optimizer actually holds.</summary>
public static class GaLoreMemory
{
    /// <summary>
    /// State elements GaLore keeps for one [m, n] weight: the two moments of R plus the projector,
    /// <c>2·m·r + r·n</c> (right side) or <c>2·r·n + m·r</c> (left side), r clamped to min(m, n). With <c>std</c> this is
    /// <c>2·r·max(m, n) + r·min(m, n)</c>.
    /// </summary>
    public static long GaLoreStateElements(long m, long n, int rank, GaLoreProjection projection = GaLoreProjection.Standard)
    {
        var side = GaLoreProjector.Side(m, n, projection);
        var state = GaLoreProjector.StateShape(m, n, rank, side);
        var projector = GaLoreProjector.ProjectorShape(m, n, rank, side);
        return 2 * state[0] * state[1] + projector[0] * projector[1];
    }

    /// <summary>State elements AdamW keeps for one [m, n] weight: <c>2·m·n</c>.</summary>
    public static long AdamWStateElements(long m, long n) => 2 * m * n;

    /// <summary>
    /// Bytes of the state tensors <paramref name="optimizer"/> holds now (moments, projectors; the per-parameter step
    /// counters, 8 bytes each, are left out), measured from its <see cref="TrainingOptimizer.StateDict"/>.
    /// </summary>
    public static long StateBytes(TrainingOptimizer optimizer)
    {
        using var scope = NewDisposeScope();
        return optimizer.StateDict()
            .Where(kv => !kv.Key.EndsWith("/step", StringComparison.Ordinal))
            .Sum(kv => kv.Value.numel() * kv.Value.ElementSize);
    }
}
