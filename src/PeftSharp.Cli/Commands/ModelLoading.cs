using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Models;
using TorchSharp;

namespace PeftSharp.Cli.Commands;

/// <summary>Loads a model folder with zero or more adapters, optionally merged: shared by forward, generate and eval.</summary>
internal static class ModelLoading
{
    public static (PretrainedModel Model, PeftModel? Peft) Load(string modelDir, IReadOnlyList<DirectoryInfo> adapters, bool merge, torch.Device device)
    {
        var model = AutoModel.FromPretrained(modelDir, new ModelLoadOptions { Device = device });
        if (adapters.Count == 0)
        {
            return (model, null);
        }
        var peft = PeftModel.Wrap(model);
        for (var i = 0; i < adapters.Count; i++)
        {
            PeftAdapterFiles.Load(peft, adapters[i].FullName, i == 0 ? PeftAdapterFiles.DefaultAdapterName : $"adapter{i}");
        }
        peft.SetActiveAdapters([.. peft.Configs.Keys]);
        if (merge)
        {
            return ((PretrainedModel)peft.MergeAndUnload(), null);
        }
        return (model, peft);
    }
}
