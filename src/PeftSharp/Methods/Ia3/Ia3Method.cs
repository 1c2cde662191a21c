using PeftSharp.Core;

namespace PeftSharp.Methods.Ia3;

/// <summary>Registry entry for (IA)³ (PEFT <c>IA3</c>).</summary>
public sealed class Ia3Method : IAdapterMethod
{
    public string Name => "ia3";

    public string PeftType => Ia3Config.Type;

    public string Description => "(IA)³: a learned vector rescales each target's output, or its input on feed-forward modules (Liu et al. 2022, arXiv 2205.05638)";

    public string ParameterCountFormula => "d_out per target (d_in on feedforward_modules)";

    public Type ConfigType => typeof(Ia3Config);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new Ia3Layer(layer);

    /// <summary>GPT-2's Conv1D targets set <c>fan_in_fan_out</c>, as PEFT sets it (with a warning) for them.</summary>
    public AdapterConfig PrepareAdapter(AdapterConfig config, IReadOnlyList<BaseLayer> targets) =>
        targets.Any(t => t.FanInFanOut) && config is Ia3Config { FanInFanOut: false } c ? c with { FanInFanOut = true } : config;

    /// <summary>PEFT's IA3 target mapping for the model types PeftSharp loads (attention keys/values and the MLP output).</summary>
    public IReadOnlyList<string>? DefaultTargetModules(string modelType) => modelType switch
    {
        "llama" or "mistral" or "qwen2" => ["k_proj", "v_proj", "down_proj"],
        "gpt2" => ["c_attn", "mlp.c_proj"],
        "bert" => ["key", "value", "output.dense"],
        _ => null,
    };
}
