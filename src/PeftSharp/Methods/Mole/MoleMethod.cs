using PeftSharp.Core;
using PeftSharp.Training;

namespace PeftSharp.Methods.Mole;

/// <summary>Registry entry for LLaVA-MoLE (PeftSharp's <c>MOLE</c>), with the training hook that adds its balancing loss.</summary>
public sealed class MoleMethod : IAdapterMethod, ITrainingHooksProvider
{
    public string Name => "mole";

    public string PeftType => MoleConfig.Type;

    public string Description => "Sparse mixture of K LoRA experts per MLP, top-1 routed per token by one router per MLP; plain LoRA elsewhere (Chen et al. 2024, LLaVA-MoLE, arXiv 2401.16160)";

    public string ParameterCountFormula => "r·(d_in + d_out); MLP projections K·r·(d_in + d_out), + K·(d + 1) once per MLP for the router";

    public Type ConfigType => typeof(MoleConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new MoleLayer(layer);

    /// <summary>A fresh routing plan per adapter: the layers' configs (<see cref="MoleConfig.ForModule"/>) join its MLP groups.</summary>
    public AdapterConfig PrepareAdapter(AdapterConfig config, IReadOnlyList<BaseLayer> targets) =>
        ((MoleConfig)config) with { Plan = new MolePlan() };

    /// <summary>LoRA on the attention projections (as the official code) plus the MLP projections that carry the experts.</summary>
    public IReadOnlyList<string>? DefaultTargetModules(string modelType) => modelType switch
    {
        "gpt2" => ["c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
        "bert" => ["query", "key", "value", "output.dense", "intermediate.dense"],
        _ => ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    };

    /// <summary>The balancing-loss hook (none when <c>moe_balance_w</c> is 0).</summary>
    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName)
    {
        var config = (MoleConfig)model.Configs[adapterName];
        var plan = model.AdapterLayers().Select(l => l.Layer).OfType<MoleLayer>()
            .Where(l => l.AdapterNames.Contains(adapterName)).Select(l => l.PlanOf(adapterName)).FirstOrDefault(p => p is not null);
        if (plan is null || plan.Groups.Count == 0)
        {
            throw new PeftException(
                $"MoLE adapter '{adapterName}': none of its target modules {config.TargetModules} matches expert_modules {config.ExpertModules}, " +
                "so no MLP carries experts; add the MLP projections (e.g. gate_proj, up_proj, down_proj) to target_modules");
        }
        return config.BalanceWeight > 0 ? new MoleBalanceHook(plan, config.BalanceWeight) : null;
    }
}
