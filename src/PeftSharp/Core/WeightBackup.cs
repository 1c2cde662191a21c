using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>Copies of weights taken before an operation that may rewrite them, restored if it fails.</summary>
internal sealed class WeightBackup : IDisposable
{
    private readonly List<(Parameter Target, Tensor Copy)> _saved = [];

    public static WeightBackup Of(IEnumerable<Parameter> weights)
    {
        var b = new WeightBackup();
        using var _ = torch.no_grad();
        foreach (var w in weights.Distinct())
        {
            var copy = w.detach().clone();
            copy.DetachFromDisposeScope();
            b._saved.Add((w, copy));
        }
        return b;
    }

    /// <summary>The saved copy of <paramref name="weight"/> (in its stored layout), or null when it was not saved.</summary>
    public Tensor? CopyOf(Parameter weight) => _saved.FirstOrDefault(s => ReferenceEquals(s.Target, weight)).Copy;

    public void Restore()
    {
        using var _ = torch.no_grad();
        foreach (var (target, copy) in _saved)
        {
            target.copy_(copy);
        }
    }

    public void Dispose()
    {
        foreach (var (_, copy) in _saved)
        {
            copy.Dispose();
        }
    }
}
