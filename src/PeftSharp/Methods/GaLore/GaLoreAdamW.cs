using PeftSharp.Training.Optim;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.GaLore;

/// <summary>Hyperparameters of <see cref="GaLoreAdamW"/>, with the official defaults (<c>GaLoreProjector</c>, <c>galore_torch.AdamW</c>).</summary>
public sealed record GaLoreOptions
{
    /// <summary>Projection rank r (clamped to min(m, n)). GaLore's <c>rank</c>; the official CLI default is 128.</summary>
    public int Rank { get; init; } = 128;

    /// <summary>T (<c>update_proj_gap</c>): the projector is recomputed at the parameter's steps 0, T, 2T, …</summary>
    public int UpdateProjectionGap { get; init; } = 200;

    /// <summary>α (<c>scale</c>), multiplying the back-projected update.</summary>
    public double Scale { get; init; } = 1.0;

    /// <summary><c>proj_type</c>.</summary>
    public GaLoreProjection Projection { get; init; } = GaLoreProjection.Standard;

    public double Beta1 { get; init; } = 0.9;

    public double Beta2 { get; init; } = 0.999;

    /// <summary>Added to √v before the bias correction, as transformers' AdamW (default 1e-6).</summary>
    public double Eps { get; init; } = 1e-6;

    /// <summary>Decoupled weight decay of the groups <see cref="GaLoreAdamW.Create"/> makes; applied after the update.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Parses a <c>proj_type</c> string, naming the key when it is not one of the supported values.</summary>
    public static GaLoreProjection ParseProjection(string value) => value switch
    {
        "std" => GaLoreProjection.Standard,
        "reverse_std" => GaLoreProjection.ReverseStandard,
        "left" => GaLoreProjection.Left,
        "right" => GaLoreProjection.Right,
        "full" => throw new ConfigException("proj_type \"full\" (two-sided projection) is not supported; use std, reverse_std, left or right"),
        _ => throw new ConfigException($"proj_type must be std, reverse_std, left or right, got \"{value}\""),
    };

    public void Validate()
    {
        if (Rank <= 0 || UpdateProjectionGap <= 0 || !(Scale > 0))
        {
            throw new ConfigException($"GaLore: rank, update_proj_gap and scale must be > 0, got rank={Rank}, update_proj_gap={UpdateProjectionGap}, scale={Scale}");
        }
        if (Beta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1 || !(Eps >= 0) || !(WeightDecay >= 0))
        {
            throw new ConfigException($"GaLore: betas must be in [0, 1) and eps, weight_decay >= 0, got ({Beta1}, {Beta2}), eps={Eps}, weight_decay={WeightDecay}");
        }
    }
}

/// <summary>
/// GaLore's AdamW (<c>galore_torch/adamw.py</c>), step for step. For a projected 2-D parameter W [m, n] with gradient G:
/// at its steps t = 0, T, 2T, … the projector P is recomputed from the SVD of G (<see cref="GaLoreProjector.Compute"/>);
/// then <c>R = proj(G)</c>, <c>M ← β1 M + (1−β1) R</c>, <c>V ← β2 V + (1−β2) R²</c>, <c>N = M / (√V + ε)</c>,
/// <c>W ← W − lr·√(1−β2ᵗ)/(1−β1ᵗ)·α·back(N)</c>, and last the decoupled decay <c>W ← W − lr·λ·W</c>. The moments are not
/// rotated when P changes (trap 3 of the reference). Every other parameter (1-D, or rejected by the projection filter)
/// takes the same transformers-style AdamW step unprojected. State per projected parameter: <c>exp_avg</c>,
/// <c>exp_avg_sq</c> (the shape of R) and <c>projector</c> (the shape of P), plus <c>step</c>; all are saved in checkpoints.
/// </summary>
public sealed class GaLoreAdamW : PerParameterOptimizer
{
    public const string ProjectorField = "projector";

    private readonly Func<NamedParameter, bool> _project;

    /// <param name="groups">The parameter groups (weight decay and lr scale per group).</param>
    /// <param name="options">Rank, gap, scale, projection side and Adam's constants.</param>
    /// <param name="project">Which parameters are projected; default: every 2-D parameter.</param>
    public GaLoreAdamW(IEnumerable<ParameterGroup> groups, GaLoreOptions? options = null, Func<NamedParameter, bool>? project = null) : base(groups)
    {
        Options = options ?? new GaLoreOptions();
        Options.Validate();
        _project = project ?? (p => p.Parameter.dim() == 2);
    }

    /// <summary>
    /// GaLore over <paramref name="parameters"/>: every 2-D one (or those <paramref name="project"/> accepts) projected, with
    /// <see cref="GaLoreOptions.WeightDecay"/>; 1-D ones (biases, norms) unprojected and undecayed.
    /// </summary>
    public static GaLoreAdamW Create(IEnumerable<NamedParameter> parameters, GaLoreOptions? options = null, Func<NamedParameter, bool>? project = null)
    {
        options ??= new GaLoreOptions();
        return new GaLoreAdamW(ParameterGroups.WithDecay(parameters, options.WeightDecay), options, project);
    }

    public GaLoreOptions Options { get; }

    /// <summary>Whether <paramref name="parameter"/> has its gradient projected (2-D and accepted by the filter).</summary>
    public bool IsProjected(NamedParameter parameter) => parameter.Parameter.dim() == 2 && _project(parameter);

    /// <summary>The side projected for a 2-D parameter.</summary>
    public ProjectionSide SideOf(Parameter parameter) => GaLoreProjector.Side(parameter.shape[0], parameter.shape[1], Options.Projection);

    protected override void Update(NamedParameter parameter, Tensor grad, ParameterState state, ParameterGroup group, double learningRate)
    {
        var p = parameter.Parameter;
        if (grad.is_sparse)
        {
            throw new PeftException($"GaLore: '{parameter.Name}' has a sparse gradient, which Adam does not support");
        }
        var projected = IsProjected(parameter);
        var side = projected ? SideOf(p) : default;
        Tensor? projector = null;
        var g = grad;
        if (projected)
        {
            // The official projector refreshes when step % T == 0, with the step counted before this update.
            if (!state.Tensors.TryGetValue(ProjectorField, out projector) || state.Step % Options.UpdateProjectionGap == 0)
            {
                projector = state.Set(ProjectorField, GaLoreProjector.Compute(grad, Options.Rank, side));
            }
            g = GaLoreProjector.Project(grad, projector, side);
        }
        if (!state.Tensors.TryGetValue("exp_avg", out var expAvg))
        {
            expAvg = state.Set("exp_avg", zeros_like(g));
        }
        if (!state.Tensors.TryGetValue("exp_avg_sq", out var expAvgSq))
        {
            expAvgSq = state.Set("exp_avg_sq", zeros_like(g));
        }
        state.Step++;
        var (b1, b2) = (Options.Beta1, Options.Beta2);
        expAvg.mul_(b1).add_(g, alpha: 1 - b1);
        expAvgSq.mul_(b2).addcmul_(g, g, value: 1 - b2);
        var denom = expAvgSq.sqrt().add_(Options.Eps);
        var stepSize = learningRate * Math.Sqrt(1 - Math.Pow(b2, state.Step)) / (1 - Math.Pow(b1, state.Step));
        var normalised = expAvg / denom;
        if (projected)
        {
            normalised = GaLoreProjector.ProjectBack(normalised, projector!, side, Options.Scale);
        }
        p.add_(normalised, alpha: -stepSize);
        if (group.WeightDecay > 0)
        {
            p.add_(p, alpha: -learningRate * group.WeightDecay);
        }
    }

    protected override void CheckField(string name, string field, Tensor value, Parameter parameter, string source)
    {
        var named = Parameters.First(x => ReferenceEquals(x.Parameter, parameter));
        if (!IsProjected(named))
        {
            base.CheckField(name, field, value, parameter, source);
            return;
        }
        var (m, n) = (parameter.shape[0], parameter.shape[1]);
        var side = SideOf(parameter);
        long[]? expected = field switch
        {
            ProjectorField => GaLoreProjector.ProjectorShape(m, n, Options.Rank, side),
            "exp_avg" or "exp_avg_sq" => GaLoreProjector.StateShape(m, n, Options.Rank, side),
            _ => null,
        };
        if (expected is null)
        {
            throw new ModelMismatchException($"{source}: optimizer state '{name}/{field}' is not a GaLore state field (exp_avg, exp_avg_sq, projector)");
        }
        if (!value.shape.SequenceEqual(expected))
        {
            throw new ModelMismatchException(
                $"{source}: GaLore state '{name}/{field}' is [{string.Join(", ", value.shape)}] but rank {Options.Rank} on a [{m}, {n}] weight needs [{string.Join(", ", expected)}]");
        }
    }
}
