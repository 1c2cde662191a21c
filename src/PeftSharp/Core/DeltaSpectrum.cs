using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>The singular values of one adapted module's ΔW.</summary>
public sealed record ModuleSpectrum(string Module, long Rows, long Columns, IReadOnlyList<double> SingularValues)
{
    /// <summary>Fraction of ‖ΔW‖²_F in the top <paramref name="k"/> singular values.</summary>
    public double EnergyInTop(int k)
    {
        var total = SingularValues.Sum(s => s * s);
        return total == 0 ? 0 : SingularValues.Take(k).Sum(s => s * s) / total;
    }
}

/// <summary>
/// Singular-value spectra of adapter updates: what rank an update really uses (the basis of LoRA-Squeeze-style
/// compression and of rank analysis). Works on live adapter layers through their closed-form ΔW.
/// </summary>
public static class DeltaSpectrum
{
    /// <summary>The spectrum of every layer holding <paramref name="adapterName"/> (layers without a closed-form ΔW are skipped).</summary>
    public static IReadOnlyList<ModuleSpectrum> Of(PeftModel model, string adapterName)
    {
        var result = new List<ModuleSpectrum>();
        foreach (var (name, layer) in model.AdapterLayers())
        {
            if (!layer.AdapterNames.Contains(adapterName))
            {
                continue;
            }
            using var scope = torch.NewDisposeScope();
            using var _ = torch.no_grad();
            var delta = layer.DeltaWeight(adapterName);
            if (delta is null)
            {
                continue;
            }
            var matrix = delta.dim() > 2 ? delta.flatten(1) : delta;
            result.Add(new ModuleSpectrum(name, matrix.shape[0], matrix.shape[1], SingularValues(matrix)));
        }
        return result;
    }

    /// <summary>Singular values of a low-rank product <c>s·B·A</c> without forming it: those of <c>s·R_B·R_Aᵀ</c> (thin QRs of B and Aᵀ).</summary>
    public static IReadOnlyList<double> OfFactors(Tensor b, Tensor a, double scale)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var (_, rb) = torch.linalg.qr(b.to(ScalarType.Float64));
        var (_, ra) = torch.linalg.qr(a.t().to(ScalarType.Float64));
        return SingularValues(rb.matmul(ra.t()) * scale);
    }

    private static IReadOnlyList<double> SingularValues(Tensor m) =>
        torch.linalg.svdvals(m.to(ScalarType.Float64)).cpu().data<double>().ToArray();
}
