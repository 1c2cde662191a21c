using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Training;

/// <summary>Global gradient norm and clipping over a set of parameters, as torch's <c>clip_grad_norm_</c>.</summary>
public static class Gradients
{
    /// <summary>
    /// The L2 norm of all gradients together (the norm of the per-tensor norms, as torch computes it). NaN or ∞ when
    /// any gradient holds one, which is how the trainer detects bad steps. Parameters without a gradient are skipped.
    /// </summary>
    public static double GlobalNorm(IEnumerable<NamedParameter> parameters)
    {
        using var scope = torch.NewDisposeScope();
        return Total(parameters)?.to_type(ScalarType.Float64).item<double>() ?? 0.0;
    }

    /// <summary>
    /// Scales every gradient by <c>min(1, maxNorm / (norm + 1e-6))</c> in place (torch's <c>clip_grad_norm_</c>, including
    /// its 1e-6) and returns the norm before clipping.
    /// </summary>
    public static double ClipByGlobalNorm(IEnumerable<NamedParameter> parameters, double maxNorm)
    {
        using var scope = torch.NewDisposeScope();
        var list = parameters.ToList();
        var total = Total(list);
        if (total is null)
        {
            return 0.0;
        }
        var coefficient = (maxNorm / (total + 1e-6)).clamp(max: 1.0);
        using (torch.no_grad())
        {
            foreach (var p in list)
            {
                var g = p.Parameter.grad;
                g?.mul_(coefficient.to(g.dtype, g.device));
            }
        }
        return total.to_type(ScalarType.Float64).item<double>();
    }

    private static Tensor? Total(IEnumerable<NamedParameter> parameters)
    {
        var norms = new List<Tensor>();
        foreach (var p in parameters)
        {
            var g = p.Parameter.grad;
            if (g is not null)
            {
                norms.Add(g.detach().norm());
            }
        }
        if (norms.Count == 0)
        {
            return null;
        }
        var dtype = norms.Select(n => n.dtype).Distinct().Count() == 1 ? norms[0].dtype : ScalarType.Float32;
        var device = norms[0].device;
        return torch.stack(norms.Select(n => n.to(dtype, device))).norm();
    }
}
