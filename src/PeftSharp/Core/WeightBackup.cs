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
