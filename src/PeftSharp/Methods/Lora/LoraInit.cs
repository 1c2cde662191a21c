using PeftSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Lora;

/// <summary>
/// LoRA initialisations as PEFT's <c>LoraLayer.reset_lora_parameters</c>, <c>pissa_init</c> and <c>olora_init</c> do them
/// (reference §1). PiSSA and OLoRA rewrite the base weight into the residual <c>W − s·B·A</c>, so the model's output is
/// unchanged at init.
/// </summary>
internal static class LoraInit
{
    /// <summary>Default: A Kaiming-uniform (a = √5, bound 1/√fan_in), B = 0. "gaussian": A ~ N(0, std 1/r), B = 0.</summary>
    public static void Standard(Tensor a, Tensor b, InitLoraWeights init, int rank)
    {
        using var _ = torch.no_grad();
        if (init.Flag == false)
        {
            // PEFT leaves nn.Linear's own init in place: both factors Kaiming-uniform(a=√5), so ΔW ≠ 0.
            nn.init.kaiming_uniform_(a, Math.Sqrt(5));
            nn.init.kaiming_uniform_(b, Math.Sqrt(5));
            return;
        }
        if (init.Method == "orthogonal")
        {
            Orthogonal(a, b, rank);
            return;
        }
        if (init.Method == "gaussian")
        {
            nn.init.normal_(a, 0, 1.0 / rank);
        }
        else
        {
            nn.init.kaiming_uniform_(a, Math.Sqrt(5));
        }
        nn.init.zeros_(b);
    }

    /// <summary>
    /// PEFT's <c>"orthogonal"</c> init (Linear only, even r): Q from the QR of an r×r Gaussian; A = (G₁·Q_odd)ᵀ/10 and
    /// B = G₂ᵀ·Q_even/10 with Gaussian G₁ [in, r/2], G₂ [r/2, out]. Q's odd and even rows are orthogonal, so B·A = 0 and
    /// the output starts at the base, while neither factor is zero.
    /// </summary>
    private static void Orthogonal(Tensor a, Tensor b, int rank)
    {
        if (a.dim() != 2)
        {
            throw new PeftException("init_lora_weights \"orthogonal\" is for Linear layers only (as in PEFT)");
        }
        if (rank % 2 != 0)
        {
            throw new ConfigException($"init_lora_weights \"orthogonal\" needs an even r, got {rank} (as in PEFT)");
        }
        using var scope = torch.NewDisposeScope();
        var (q, _) = torch.linalg.qr(torch.randn(rank, rank, dtype: ScalarType.Float32));
        var odd = q.index(TensorIndex.Slice(0, null, 2));
        var even = q.index(TensorIndex.Slice(1, null, 2));
        a.copy_(torch.randn(a.shape[1], rank / 2).mm(odd).t() / 10.0);
        b.copy_(torch.randn(rank / 2, b.shape[0]).t().mm(even) / 10.0);
    }

    /// <summary>
    /// The lora_B bias of <c>lora_bias</c>: zero with <c>init_lora_weights=true</c> (PEFT's reset), the layer's own
    /// uniform init with false (PEFT leaves it). No-op without a bias.
    /// </summary>
    public static void BiasOfB(Tensor? bias, InitLoraWeights init)
    {
        if (bias is not null && init.Flag != false)
        {
            using var _ = torch.no_grad();
            nn.init.zeros_(bias);
        }
    }

    /// <summary>Embedding LoRA is initialised the other way round (PEFT): A = 0, B ~ N(0, 1); with false both are N(0, 1).</summary>
    public static void Embedding(Tensor a, Tensor b, InitLoraWeights init)
    {
        using var _ = torch.no_grad();
        if (init.Flag == false)
        {
            nn.init.normal_(a);
            nn.init.normal_(b);
            return;
        }
        nn.init.zeros_(a);
        nn.init.normal_(b);
    }

    /// <summary>
    /// PiSSA: W = U S Vᵀ; A = diag(√(S_r/s)) V_rᵀ, B = U_r diag(√(S_r/s)); W ← W − s·B·A. Computed in fp32 and cast back.
    /// With <paramref name="niter"/> a randomized SVD with that many subspace iterations is used.
    /// </summary>
    public static void Pissa(BaseLayer layer, Tensor a, Tensor b, int rank, double scaling, int? niter)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var w = OutInWeight(layer);
        Tensor u, s, vh;
        if (niter is int k)
        {
            (u, s, vh) = RandomizedSvd(w, rank, k);
        }
        else
        {
            (u, s, vh) = torch.linalg.svd(w, fullMatrices: false);
        }
        var sr = s[..rank] / scaling;
        var sqrt = sr.sqrt();
        var loraA = sqrt.unsqueeze(1) * vh[..rank];
        var loraB = u[.., ..rank] * sqrt.unsqueeze(0);
        a.copy_(loraA);
        b.copy_(loraB);
        WriteResidual(layer, w - scaling * loraB.matmul(loraA));
    }

    /// <summary>OLoRA: thin QR W = Q R; B = Q[:, :r], A = R[:r, :] (s is not divided out); W ← W − s·B·A.</summary>
    public static void Olora(BaseLayer layer, Tensor a, Tensor b, int rank, double scaling)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var w = OutInWeight(layer);
        var (q, r) = torch.linalg.qr(w);
        var loraB = q[.., ..rank];
        var loraA = r[..rank];
        a.copy_(loraA);
        b.copy_(loraB);
        WriteResidual(layer, w - scaling * loraB.matmul(loraA));
    }

    private static Tensor OutInWeight(BaseLayer layer)
    {
        if (layer.Kind is not (BaseLayerKind.Linear or BaseLayerKind.Conv1D))
        {
            throw new PeftException($"PiSSA/OLoRA initialisation supports Linear and Conv1D layers, not {layer.Kind}");
        }
        var w = layer.Weight.detach().to(ScalarType.Float32);
        return layer.FanInFanOut ? w.t() : w;
    }

    private static void WriteResidual(BaseLayer layer, Tensor residualOutIn)
    {
        var r = layer.FanInFanOut ? residualOutIn.t() : residualOutIn;
        layer.Weight.copy_(r.to(layer.DType));
    }

    // Halko et al. randomized range finder with `niter` power iterations (QR-stabilised), then an exact SVD of the
    // small projected matrix; same role as torch.svd_lowrank in PEFT's pissa_niter_K.
    private static (Tensor U, Tensor S, Tensor Vh) RandomizedSvd(Tensor w, int rank, int niter)
    {
        var omega = torch.randn(w.shape[1], rank, dtype: w.dtype, device: w.device);
        var (q, _) = torch.linalg.qr(w.matmul(omega));
        for (var i = 0; i < niter; i++)
        {
            var (z, _) = torch.linalg.qr(w.t().matmul(q));
            (q, _) = torch.linalg.qr(w.matmul(z));
        }
        var (ub, s, vh) = torch.linalg.svd(q.t().matmul(w), fullMatrices: false);
        return (q.matmul(ub), s, vh);
    }
}
